// The latent explorer's page. TensorBoard's frontend loads this ES module into an iframe (its base URL is the
// plugin's route, so './decode' is /data/plugin/latent/decode) and calls render().
//
// State: `base` is the code the page starts from (the clicked test image's, or the codes' mean); moving the
// mouse over the plane replaces the plane's two coordinates of `base` and decodes the result; a slider changes
// one coordinate of `base`. Clicking a test point makes it image A, then B; A and B give the interpolation.

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
                 '#bcbd22', '#17becf'];
const PLANE = 440;   // scatter side in CSS pixels
const SHOWN = 196;   // decoded image side in CSS pixels
const PICK = 6;      // a click within this many pixels of a test point picks it

const state = {
  info: null, run: null, base: null, code: null, label: null, mode: 'dims', xdim: 0, ydim: 1,
  bounds: null, pair: [], inflight: false, pending: null, version: 0, lastMs: null,
};

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'text') node.textContent = value;
    else if (key === 'style') node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of [].concat(children)) if (child) node.appendChild(child);
  return node;
}

const STYLE = `
  body { font-family: Roboto, sans-serif; font-size: 13px; margin: 12px; color: #212121; }
  header, .row { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
  #main { display: flex; gap: 20px; align-items: flex-start; flex-wrap: wrap; }
  #message { color: #b71c1c; background: #ffebee; border: 1px solid #ef9a9a; padding: 8px 12px; margin: 8px 0;
             max-width: 900px; }
  #message:empty { display: none; }
  canvas.pixels { image-rendering: pixelated; border: 1px solid #bdbdbd; background: #000; }
  #scatter { border: 1px solid #bdbdbd; cursor: crosshair; }
  .slider { display: grid; grid-template-columns: 130px 200px 60px; align-items: center; gap: 6px; }
  .legend span { display: inline-block; margin-right: 10px; }
  .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }
  .muted { color: #757575; }
  h3 { margin: 8px 0 4px; font-size: 14px; font-weight: 500; }
`;

export async function render() {
  document.head.appendChild(el('style', {text: STYLE}));
  const runSelect = el('select', {id: 'run'});
  const plane = el('select', {id: 'plane'});
  const xdim = el('select', {id: 'xdim'});
  const ydim = el('select', {id: 'ydim'});
  const label = el('select', {id: 'label'});
  const scatter = el('canvas', {id: 'scatter', width: PLANE, height: PLANE});
  const decoded = el('canvas', {id: 'decoded', class: 'pixels', width: 1, height: 1,
                                 style: `width:${SHOWN}px;height:${SHOWN}px`});
  document.body.appendChild(el('div', {id: 'app'}, [
    el('header', {}, [el('b', {text: 'Latent explorer'}), el('label', {text: 'Run '}, runSelect),
                      el('span', {id: 'status', class: 'muted'})]),
    el('div', {id: 'message'}),
    el('div', {id: 'main', style: 'display:none'}, [
      el('div', {}, [
        el('div', {class: 'row'}, [el('label', {text: 'Plane '}, plane), el('label', {text: 'x '}, xdim),
                                  el('label', {text: 'y '}, ydim)]),
        scatter,
        el('div', {id: 'legend', class: 'legend'}),
        el('div', {class: 'muted', style: `max-width:${PLANE}px`,
                   text: 'Move the mouse over the plane to decode the code under it; click a ' +
                         'test point to start from its code (1st click: A, 2nd: B).'}),
      ]),
      el('div', {}, [
        el('h3', {text: 'Decoded'}), decoded,
        el('div', {id: 'code', class: 'muted', style: 'max-width:420px;word-break:break-all'}),
        el('div', {id: 'labelRow', class: 'row', style: 'display:none'}, [el('label', {text: 'Class '}, label)]),
        el('h3', {id: 'slidersTitle', text: 'Latent dimensions'}),
        el('div', {id: 'sliders'}),
        el('div', {id: 'pairBox', style: 'display:none'}, [
          el('h3', {text: 'Interpolation from A to B'}),
          el('div', {class: 'row'}, [el('span', {text: 'A'}), el('canvas', {id: 'imageA', class: 'pixels'}),
                                     el('span', {text: 'B'}), el('canvas', {id: 'imageB', class: 'pixels'})]),
          el('canvas', {id: 'strip', class: 'pixels'}),
        ]),
      ]),
    ]),
  ]));
  window.explorer = {state, toPixel, codeAt, decodeNow: (code) => requestDecode(code)};

  runSelect.addEventListener('change', () => selectRun(runSelect.value));
  plane.addEventListener('change', () => { state.mode = plane.value; computeBounds(); drawPoints(); });
  xdim.addEventListener('change', () => { state.xdim = +xdim.value; computeBounds(); drawPoints(); });
  ydim.addEventListener('change', () => { state.ydim = +ydim.value; computeBounds(); drawPoints(); });
  label.addEventListener('change', () => { state.label = +label.value; showCode(state.base); refreshPair(); });
  scatter.addEventListener('mousemove', (event) => {
    const [px, py] = mouse(event);
    showCode(codeAt(px, py), [px, py]);
  });
  scatter.addEventListener('mouseleave', () => showCode(state.base));
  scatter.addEventListener('click', (event) => clickPlane(...mouse(event)));

  let runs = [];
  try {
    runs = (await getJson('./runs')).runs;
  } catch (error) {
    return fail(error.message);
  }
  for (const run of runs) {
    runSelect.appendChild(el('option', {value: run.name, text: run.decoder ? run.name : `${run.name} (no decoder yet)`}));
  }
  const wanted = requestedRun();
  if (wanted !== null && !runs.some((run) => run.name === wanted)) {
    runSelect.appendChild(el('option', {value: wanted, text: `${wanted} (not found)`}));
  }
  const first = wanted !== null ? wanted : (runs.find((run) => run.decoder) || runs[0] || {}).name;
  if (first === undefined) {
    return fail('No run under the log directory yet: a run is a directory with config.json and decoder.keras, ' +
                'which train.py writes (python train.py --workdir=runs/NAME).');
  }
  runSelect.value = first;
  await selectRun(first);
}

// The run asked for in the page's URL (plugin_entry.html?name=latent&run=NAME); null if none.
function requestedRun() {
  return new URLSearchParams(window.location.search).get('run');
}

async function getJson(url) {
  const response = await fetch(url);
  let payload = null;
  try {
    payload = await response.json();
  } catch (error) {
    throw new Error(`${url}: HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
  return payload;
}

async function getPixels(url) {
  const response = await fetch(url);
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try { message = (await response.json()).error; } catch (error) { /* keep the status */ }
    throw new Error(message);
  }
  const shape = response.headers.get('X-Image-Shape').split(',').map(Number);
  return {shape, data: new Uint8Array(await response.arrayBuffer()), ms: response.headers.get('X-Decode-Ms')};
}

function fail(message) {
  document.getElementById('message').textContent = message;
  document.getElementById('main').style.display = 'none';
  document.getElementById('pairBox').style.display = 'none';
  document.getElementById('status').textContent = '';
}

function query(extra) {
  const args = new URLSearchParams({run: state.run, ...extra});
  if (state.info.conditional) args.set('label', String(state.label));
  return args.toString();
}

async function selectRun(name) {
  state.run = name;
  state.info = null;
  document.getElementById('message').textContent = '';
  document.getElementById('status').textContent = `loading ${name}…`;
  let info;
  try {
    info = await getJson('./run?' + new URLSearchParams({run: name}));
  } catch (error) {
    return fail(error.message);
  }
  if (state.run !== name) return;  // another run was picked meanwhile
  state.info = info;
  state.pair = [];
  state.base = info.mean.slice();
  state.label = 0;
  // A 2-D latent is drawn as itself (z[0] across, z[1] up); a larger one over its two most used dimensions.
  const [first, second] = info.latent_dim === 2 ? [0, 1] : info.order;
  state.xdim = first;
  state.ydim = second === undefined ? first : second;
  state.mode = 'dims';
  const [h, w] = info.image_shape;
  const decoded = document.getElementById('decoded');
  decoded.width = w;
  decoded.height = h;
  decoded.style.width = `${SHOWN}px`;
  decoded.style.height = `${Math.round(SHOWN * h / w)}px`;
  buildControls(info);
  document.getElementById('main').style.display = 'flex';
  document.getElementById('pairBox').style.display = 'none';
  document.getElementById('status').textContent =
      `${info.model}, latent ${info.latent_dim}, ${info.image_shape.join('x')} images, ` +
      `${info.codes.length} of ${info.test_images} test codes shown`;
  computeBounds();
  drawPoints();
  showCode(state.base);
}

function buildControls(info) {
  const plane = document.getElementById('plane');
  plane.replaceChildren(el('option', {value: 'dims', text: info.latent_dim === 2 ? 'the latent (2-D)' :
                                                         'two dimensions (highest ' + info.usage.what + ')'}));
  if (info.latent_dim > 2) plane.appendChild(el('option', {value: 'pca', text: "the codes' PCA plane"}));
  plane.value = 'dims';
  for (const [id, value] of [['xdim', state.xdim], ['ydim', state.ydim]]) {
    const select = document.getElementById(id);
    select.replaceChildren(...info.order.map((d) => el('option', {
      value: d, text: `z[${d}] (${info.usage.what} ${info.usage.values[d].toFixed(2)})`})));
    select.value = value;
  }
  const label = document.getElementById('label');
  label.replaceChildren(...info.class_names.map((name, i) => el('option', {value: i, text: `${i}: ${name}`})));
  document.getElementById('labelRow').style.display = info.conditional ? 'flex' : 'none';
  label.value = '0';
  const legend = document.getElementById('legend');
  legend.replaceChildren();
  if (info.labels) {
    info.class_names.slice(0, 50).forEach((name, i) => legend.appendChild(el('span', {}, [
      el('span', {class: 'swatch', style: `background:${PALETTE[i % PALETTE.length]}`}),
      document.createTextNode(name)])));
  }
  const sliders = document.getElementById('sliders');
  sliders.replaceChildren();
  document.getElementById('slidersTitle').textContent =
      `Latent dimensions (${info.sliders.length} of ${info.latent_dim}, highest ${info.usage.what} first)`;
  for (const d of info.sliders) {
    const [lo, hi] = info.ranges[d];
    const input = el('input', {type: 'range', id: `slider-${d}`, min: lo, max: hi, step: (hi - lo) / 200,
                               value: state.base[d]});
    const value = el('span', {id: `value-${d}`, text: state.base[d].toFixed(2)});
    input.addEventListener('input', () => {
      state.base[d] = +input.value;
      value.textContent = state.base[d].toFixed(2);
      drawPoints();
      showCode(state.base);
    });
    sliders.appendChild(el('div', {class: 'slider'}, [
      el('span', {text: `z[${d}] ${info.usage.what} ${info.usage.values[d].toFixed(2)}`}), input, value]));
  }
}

function syncSliders() {
  for (const d of state.info.sliders) {
    document.getElementById(`slider-${d}`).value = state.base[d];
    document.getElementById(`value-${d}`).textContent = state.base[d].toFixed(2);
  }
}

// -- the plane ---------------------------------------------------------------------------------------------

function project(z) {
  const info = state.info;
  if (state.mode === 'pca') {
    return [0, 1].map((k) => z.reduce((sum, v, j) => sum + (v - info.mean[j]) * info.pca[k][j], 0));
  }
  return [z[state.xdim], z[state.ydim]];
}

// The code whose plane coordinates are (u, v) and whose other coordinates are those of `base`.
function planeCode(u, v) {
  const code = state.base.slice();
  if (state.mode === 'pca') {
    const [bu, bv] = project(code);
    const pca = state.info.pca;
    return code.map((value, j) => value + (u - bu) * pca[0][j] + (v - bv) * pca[1][j]);
  }
  code[state.xdim] = u;
  code[state.ydim] = v;
  return code;
}

function computeBounds() {
  const points = state.info.codes.map(project);
  if (!points.length) points.push(project(state.base));
  const us = points.map((p) => p[0]);
  const vs = points.map((p) => p[1]);
  const pad = (lo, hi) => { const m = Math.max((hi - lo) * 0.08, 0.05); return [lo - m, hi + m]; };
  state.bounds = {u: pad(Math.min(...us), Math.max(...us)), v: pad(Math.min(...vs), Math.max(...vs))};
}

function toPixel(code) {
  const [u, v] = project(code);
  const {u: [u0, u1], v: [v0, v1]} = state.bounds;
  return [(u - u0) / (u1 - u0) * PLANE, (1 - (v - v0) / (v1 - v0)) * PLANE];
}

function codeAt(px, py) {
  const {u: [u0, u1], v: [v0, v1]} = state.bounds;
  return planeCode(u0 + px / PLANE * (u1 - u0), v0 + (1 - py / PLANE) * (v1 - v0));
}

function mouse(event) {
  const rect = event.target.getBoundingClientRect();
  return [(event.clientX - rect.left) * PLANE / rect.width, (event.clientY - rect.top) * PLANE / rect.height];
}

function drawPoints(cursor) {
  if (!state.info) return;
  const canvas = document.getElementById('scatter');
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, PLANE, PLANE);
  const info = state.info;
  info.codes.forEach((code, i) => {
    const [x, y] = toPixel(code);
    ctx.fillStyle = info.labels ? PALETTE[info.labels[i] % PALETTE.length] : '#1f77b4';
    ctx.globalAlpha = 0.7;
    ctx.beginPath();
    ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
  const mark = (code, color, text) => {
    const [x, y] = toPixel(code);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x, y, 6, 0, 2 * Math.PI);
    ctx.stroke();
    if (text) { ctx.fillStyle = color; ctx.font = 'bold 12px sans-serif'; ctx.fillText(text, x + 8, y - 8); }
    return [x, y];
  };
  if (state.pair.length === 2) {
    const [a, b] = state.pair.map((i) => toPixel(info.codes[i]));
    ctx.strokeStyle = '#000';
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(...a);
    ctx.lineTo(...b);
    ctx.stroke();
    ctx.setLineDash([]);
  }
  state.pair.forEach((i, k) => mark(info.codes[i], '#000', 'AB'[k]));
  mark(state.base, '#d50000');
  if (cursor) {
    ctx.strokeStyle = 'rgba(0,0,0,0.35)';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(cursor[0], 0); ctx.lineTo(cursor[0], PLANE);
    ctx.moveTo(0, cursor[1]); ctx.lineTo(PLANE, cursor[1]);
    ctx.stroke();
  }
  ctx.fillStyle = '#616161';
  ctx.font = '11px sans-serif';
  const axes = state.mode === 'pca' ? ['PC 1', 'PC 2'] : [`z[${state.xdim}]`, `z[${state.ydim}]`];
  ctx.fillText(`${axes[0]} →`, PLANE - 60, PLANE - 6);
  ctx.fillText(`↑ ${axes[1]}`, 4, 12);
}

function nearestPoint(px, py) {
  let best = -1;
  let bestDist = PICK * PICK;
  state.info.codes.forEach((code, i) => {
    const [x, y] = toPixel(code);
    const dist = (x - px) ** 2 + (y - py) ** 2;
    if (dist <= bestDist) { best = i; bestDist = dist; }
  });
  return best;
}

function clickPlane(px, py) {
  const i = nearestPoint(px, py);
  if (i < 0) {  // empty space: start from this code
    state.base = codeAt(px, py);
  } else {
    state.base = state.info.codes[i].slice();
    if (state.info.conditional && state.info.labels) {
      state.label = state.info.labels[i];
      document.getElementById('label').value = String(state.label);
    }
    state.pair = state.pair.length === 1 ? [state.pair[0], i] : [i];
    refreshPair();
  }
  syncSliders();
  drawPoints();
  showCode(state.base);
}

// -- images ------------------------------------------------------------------------------------------------

function paint(canvas, shape, data, offset = 0, x = 0) {
  const [h, w, c] = shape.slice(-3);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) image.data[4 * p + k] = data[offset + p * c + (c === 1 ? 0 : k)];
    image.data[4 * p + 3] = 255;
  }
  ctx.putImageData(image, x, 0);
}

function sizeCanvas(canvas, h, w, scale) {
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = `${w * scale}px`;
  canvas.style.height = `${h * scale}px`;
}

function showCode(code, cursor) {
  if (!state.info) return;
  state.code = code;
  if (cursor) drawPoints(cursor);
  requestDecode(code);
}

// One decode in flight at a time; while it runs, only the newest code waits (the mouse outruns the server).
async function requestDecode(code) {
  if (state.inflight) { state.pending = code; return; }
  state.inflight = true;
  const run = state.run;
  const text = code.map(String).join(',');
  const start = performance.now();
  try {
    const {shape, data, ms} = await getPixels('./decode?' + query({z: text}));
    if (state.run === run) {
      const canvas = document.getElementById('decoded');
      paint(canvas, shape, data);
      state.version += 1;
      state.lastMs = performance.now() - start;
      canvas.dataset.code = text;
      canvas.dataset.label = state.info.conditional ? String(state.label) : '';
      canvas.dataset.version = String(state.version);
      document.getElementById('code').textContent =
          describeCode(code) +
          (state.info.conditional ? `, class ${state.info.class_names[state.label]}` : '') +
          ` · decoded in ${ms} ms, shown after ${state.lastMs.toFixed(0)} ms`;
    }
  } catch (error) {
    document.getElementById('message').textContent = error.message;
  } finally {
    state.inflight = false;
    if (state.pending) {
      const next = state.pending;
      state.pending = null;
      requestDecode(next);
    }
  }
}

// z = [..] for a small latent; the most used dimensions' values for a large one.
function describeCode(code) {
  if (code.length <= 8) return `z = [${code.map((v) => v.toFixed(2)).join(', ')}]`;
  const shown = state.info.order.slice(0, 6).map((d) => `z[${d}] = ${code[d].toFixed(2)}`);
  return `${shown.join(', ')}, … (${code.length} dimensions)`;
}

async function refreshPair() {
  const box = document.getElementById('pairBox');
  if (!state.pair.length) { box.style.display = 'none'; return; }
  box.style.display = 'block';
  const [h, w] = state.info.image_shape;
  const scale = Math.max(1, Math.floor(64 / h));
  const run = state.run;
  try {
    for (const [k, id] of [[0, 'imageA'], [1, 'imageB']]) {
      const canvas = document.getElementById(id);
      sizeCanvas(canvas, h, w, scale * 1.5);
      if (k < state.pair.length) {
        const {shape, data} = await getPixels('./image?' + new URLSearchParams({run, index: state.pair[k]}));
        paint(canvas, shape, data);
        canvas.dataset.index = String(state.pair[k]);
      } else {
        canvas.getContext('2d').clearRect(0, 0, w, h);
        delete canvas.dataset.index;
      }
    }
    const strip = document.getElementById('strip');
    if (state.pair.length < 2) { sizeCanvas(strip, h, w, 0); delete strip.dataset.pair; return; }
    const [a, b] = state.pair;
    const {shape, data} = await getPixels('./interpolate?' + query({a, b, steps: 10}));
    if (state.run !== run) return;
    const [n] = shape;
    sizeCanvas(strip, h, w * n, scale);
    for (let i = 0; i < n; i++) paint(strip, shape, data, i * h * w * shape[3], i * w);
    strip.dataset.pair = `${a},${b}`;
    strip.dataset.label = state.info.conditional ? String(state.label) : '';
  } catch (error) {
    document.getElementById('message').textContent = error.message;
  }
}
