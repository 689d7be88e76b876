r"""``diffusion``: a denoising diffusion model fitted to the training codes after training, sampled by an ODE solver.

The codes are first standardised per dimension, c = (z - shift) / scale (shift, scale: the training codes' mean and
standard deviation, kept with the sampler), so the denoiser sees unit-scale data whatever the encoder's scale.

Forward process (Ho et al. 2020, "Denoising diffusion probabilistic models", DDPM, in continuous time t in [0, 1]
as in Kingma et al. 2021, "Variational diffusion models"): a variance-preserving corruption,

    q(c_t | c_0) = N(c_t; alpha_t c_0, sigma_t^2 I),   alpha_t^2 + sigma_t^2 = 1,   c_t = alpha_t c_0 + sigma_t e,

with e ~ N(0, I). The schedule is given by the log signal-to-noise ratio lambda_t = log(alpha_t^2 / sigma_t^2),
alpha_t^2 = sigmoid(lambda_t):

  ``cosine`` (Nichol & Dhariwal 2021, "Improved denoising diffusion probabilistic models"): alpha_t^2 =
    cos^2(pi t / 2), i.e. lambda_t = -2 log tan(pi t / 2), truncated to lambda in [-10, 10] by the affine map
    lambda_t = -2 log tan(a t + b), b = arctan(exp(-5)), a = arctan(exp(5)) - b (so alpha_1 and sigma_0 are
    about 0.0067, not 0: no division by zero at either end);
  ``linear``: DDPM's betas rising linearly from 1e-4 to 0.02 over 1,000 steps, in the continuous limit of
    Song et al. 2021 ("Score-based generative modeling through SDEs", the VP SDE): alpha_t^2 =
    exp(-(beta_0 t + (beta_1 - beta_0) t^2 / 2)), beta_0 = 0.1, beta_1 = 20.

Denoiser (DiffAE's latent MLP, Preechakul et al. 2022, "Diffusion autoencoders"): f(c_t, t), an MLP of residual
blocks over the code vector. t enters as a sinusoidal embedding of 1000 t (``embed`` sines and cosines at
frequencies 10000^(-k / (embed / 2)), Vaswani et al. 2017, as DDPM does), mapped by two SiLU layers to an
embedding m; the code goes in through a dense layer to h (``hidden`` wide), then each of ``blocks`` blocks adds

    h <- h + W_2 silu(W_1 LN(h) + b_1 + W_m m + b_m) + b_2      (LN: layer norm without parameters),

and the output is W_o silu(LN(h)) + b_o, d numbers, W_o starting at 0. Its target is chosen by ``prediction``:

  ``eps`` (DDPM): f predicts the noise e; the loss is |e - f(c_t, t)|^2;
  ``v`` (Salimans & Ho 2022, "Progressive distillation"): f predicts v = alpha_t e - sigma_t c_0; the loss is
    |v - f|^2. Then c_0 = alpha_t c_t - sigma_t v and e = sigma_t c_t + alpha_t v, with no division by alpha_t,
    which the eps prediction needs (c_0 = (c_t - sigma_t e) / alpha_t) and which blows up near t = 1.

The loss is summed over the code's dimensions and averaged over a batch of codes, each with its own t ~ U(0, 1)
and e. Adam (Kingma & Ba 2015), its learning rate warmed up linearly over the first ``warmup`` updates and then
decayed to 0 along a cosine; batches of ``batch_size``; ``steps`` updates at most. The default batch is large
(``BATCH_SIZE``) for two reasons: each code's loss is one draw of (t, e), so a gradient is noisy and more codes
per update make it less so, and a wider matrix product runs more codes a second on a CPU; the measured trade is in
docs/sampling.md.

EMA and when to stop. The weights sampled from are an exponential moving average of the trained ones
(theta_ema <- beta theta_ema + (1 - beta) theta, as DDPM samples from; beta = min(``ema``, (1 + k) / (10 + k)) at
update k, the warm-up of TensorFlow's ExponentialMovingAverage with num_updates). A tenth of the codes
(``held_out``; none when there are fewer than ten) is kept out of training: every ``steps / 20`` updates the EMA
weights' loss on them is computed with the same t and e each time (a fixed set of draws at stratified t, 8 per
held-out code: see below), and the EMA weights with the lowest held-out loss are the ones kept; the fit stops
early when that loss has not improved for 5 checks. With no held-out codes the last EMA weights are kept.

Smoothing (``smoothing`` s, default 0): with s > 0 the fit sees c + s u, u ~ N(0, I) fresh each update (fixed per
held-out draw): the density learnt is the codes' convolved with a centred Gaussian of covariance s^2 I, a kernel
density estimate (Parzen 1962), whose draws lie about s from the training codes (the trade: docs/sampling.md).

Sampling: c_1 = tau e, e ~ N(0, I) from ``seed`` (tau the ``temperature``), carried to c_0 along the
probability-flow ODE (Song et al. 2021) by ``solver`` in ``diffusion_steps`` K steps (``tfvae.samplers.solvers``:
``dpmpp_2m``, the default, the second-order DPM-Solver++(2M) of Lu et al. 2022; ``ddim``, the first-order DDIM of
Song, Meng & Ermon 2021 with eta = 0); z = shift + scale * c_0. The path is deterministic: the initial noise is the
only noise, so the temperature scales it alone, as a flow's temperature does (Glow, Kingma & Dhariwal 2018) and as
the other samplers' scales their Gaussian draws (``tfvae.samplers.densities``); tau = 1 is the fitted density. For
Gaussian codes the optimal denoiser is linear and the path an affine map of c_1, so tau multiplies the draws' spread
about their mean, as for the prior. For codes with several modes the ODE carries the noise's direction to a mode and
its radius to a place within it, so tau < 1 draws each mode's inner side and shrinks the spread much less than tau
(docs/sampling.md).

Codes and denoisers (``denoiser``). The MLP above (``"mlp"``, the default) takes vector codes (n, d), and grid codes
(n, h, w, c) (a gridvae's) flattened into vectors of d = h w c numbers (C order), its draws shaped back into grids
(shift and scale keep a code's shape). ``"unet"`` takes grids only: a small U-Net of 3 x 3 convolutions over the
grid (``tfvae.samplers.unet``, its architecture in its docstring), whose shared local kernels say that a cell's
denoising depends most on its neighbours and that a pattern may sit anywhere in the grid; its loss and every formula
above are the same, with the sum over all h w c numbers of a code and standardisation per cell and channel. The MLP
stays the default for grids too because on a 7 x 7 x 2 grid the U-Net reached no better samples in the same fitting
time on a CPU (docs/sampling.md has the comparison). A vqvae's grids of codebook indices are its PixelCNN's.

A held-out check uses at most ``HELD_OUT_ROWS`` (code, t, e) rows (8 draws per held-out code, or fewer, at least 1).

Storage: every weight is a plain array (``state()``: shift, scale and the named kernels and biases), saved by
``tfvae.samplers.npz`` as ``samplers/diffusion.npz``; which network it is follows from the arrays (the U-Net's
kernels are 4-D). Sampling never builds a Keras model, so nothing in the file is deserialised as code: the MLP is
evaluated with numpy's ops, the U-Net with TensorFlow's convolutions over the same plain arrays.

The schedules, the forward noising and the MLP are ``tfvae.samplers.denoiser``, the U-Net ``tfvae.samplers.unet``,
the ODE solvers ``tfvae.samplers.solvers``; this module fits and draws.
"""

import copy
import functools
import math
import time

import numpy as np
import tensorflow as tf

from tfvae import picture_arrays
from tfvae.errors import ArgumentError, TfvaeError
from tfvae.samplers import solvers, unet
from tfvae.samplers.denoiser import (
    PREDICTIONS,
    SCHEDULES,
    TENSORFLOW,
    alpha_sigma,
    check_shapes,
    check_smoothing,
    denoise,
    estimates,
    initial_params,
    noised,
    per_code,
)
from tfvae.samplers.solvers import DIFFUSION_STEPS, check_diffusion_steps

CHECKS = 20  # held-out checks over a fit
PATIENCE = 5  # checks without improvement before a fit stops
HELD_OUT_DRAWS = 8  # (t, e) draws per held-out code, at most
HELD_OUT_ROWS = 16384  # (code, t, e) rows of a held-out check, at most
DENOISERS = ("mlp", "unet")
UNET_WIDTH, UNET_LEVELS = 32, 2
HIDDEN_BOUNDS = 128, 1024  # the MLP's default width is 4 d within these (wider fits slowly: docs/sampling.md)
BATCH_SIZE, LEARNING_RATE = 512, 1.5e-3  # a fit's codes per update and Adam's peak learning rate


def _choice(name, value, choices):
    if value not in choices:
        raise ArgumentError(name, f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


class DiffusionSampler:
    """A diffusion model over the standardised codes, drawn by an ODE solver (see the module docstring).

    Attributes:
      shift, scale: (d,) the codes' mean and standard deviation (z = shift + scale * c).
      params: the denoiser's weights, name -> float32 array (the EMA weights kept by the fit).
      schedule, prediction: how it was fitted (module docstring).
      diffusion_steps, solver: a draw's steps and ODE solver (``with_draw_settings`` gives a copy with others).
    """

    name = "diffusion"
    fitted = True
    takes_grids = True  # a Run gives it grid codes as grids (for the U-Net), not flattened
    required = ("shift", "scale", "in_kernel", "in_bias", "out_kernel", "out_bias", "time_kernel_0",
                "time_bias_0", "time_kernel_1", "time_bias_1")
    # fit's keyword arguments, and the draw's (diffusion_steps, solver: settings of the draws, never a reason to refit)
    settable = ("denoiser", "hidden", "blocks", "width", "levels", "steps", "batch_size", "learning_rate",
                "prediction", "schedule", "smoothing", "diffusion_steps", "solver")
    draw_settings = ("diffusion_steps", "solver")
    # The settings a fit that was asked for none of them uses: a saved fit with another one is fitted again.
    defaults = {"prediction": "v", "schedule": "cosine", "smoothing": 0.0}
    # A saved fit that does not record a setting was made before it existed, with this value.
    missing_means = {"smoothing": defaults["smoothing"]}

    def __init__(self, shift, scale, params, schedule="cosine", prediction="v", history=None,
                 diffusion_steps=DIFFUSION_STEPS, solver=solvers.SOLVER):
        self.shift, self.scale = np.asarray(shift, "float32"), np.asarray(scale, "float32")
        self.params = {k: np.asarray(v, "float32") for k, v in params.items()}
        self.denoiser = "unet" if unet.is_unet(self.params) else "mlp"
        if self.scale.shape != self.shift.shape:
            raise ValueError(f"shift {self.shift.shape} and scale {self.scale.shape} differ")
        if self.denoiser == "unet":
            unet.check_shapes(self.shift.shape, self.params)
        else:  # vector codes, or grids the MLP saw flattened
            check_shapes(self.shift.reshape(-1), self.scale.reshape(-1), self.params)
        self.schedule = _choice("schedule", schedule, SCHEDULES)
        self.prediction = _choice("prediction", prediction, PREDICTIONS)
        self.diffusion_steps = check_diffusion_steps(diffusion_steps)
        self.solver = solvers.check_solver(solver)
        self.code_shape = self.shift.shape  # (d,), or a grid's (h, w, c): the draws' shape
        self.latent = self.shift.size
        self.history = history or {}
        self._network = None  # the U-Net's evaluation while drawing (``unet.evaluator``), made on the first draw

    @staticmethod
    def default_steps(count, batch_size=BATCH_SIZE, epochs=200, lowest=1500, highest=15000):
        """Updates of a fit: ``epochs`` passes over ``count`` codes, clipped to [lowest, highest]."""
        return int(min(max(epochs * math.ceil(count / batch_size), lowest), highest))

    @classmethod
    def fit(cls, codes, seed=0, denoiser="mlp", hidden=None, blocks=None, width=None, levels=None, steps=None,
            batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, prediction="v", schedule="cosine", embed=64, warmup=100,
            ema=0.999, smoothing=0.0):
        """Fits the denoiser to ``codes`` (n, d) or grids (n, h, w, c) (see the module docstring).

        Args:
          codes: the training codes, float (n, d), or grids (n, h, w, c).
          seed: seed of the initial weights, the held-out split, the batches and the noise.
          denoiser: "mlp" (the MLP over vectors; grids are flattened for it) or "unet" (the U-Net over grids,
            ``tfvae.samplers.unet``).
          hidden: the MLP's width (default 4 d, within ``HIDDEN_BOUNDS``).
          blocks: the MLP's residual blocks (default 3).
          width: the U-Net's first level's channels (default ``UNET_WIDTH``; each level below has twice as many).
          levels: the U-Net's levels (default ``UNET_LEVELS``).
          steps: Adam updates at most (default ``default_steps(n)``); the fit may stop earlier (held-out loss).
          batch_size: codes per update.
          learning_rate: Adam's learning rate after the warm-up, decayed to 0 along a cosine.
          prediction: "v" or "eps", what the network predicts.
          schedule: "cosine" or "linear".
          embed: size of the time embedding (sines and cosines).
          warmup: updates of the learning rate's linear warm-up.
          ema: the EMA's decay beta.
          smoothing: s >= 0, the Gaussian blur of the standardised codes (module docstring); 0: none.

        Raises:
          TfvaeError: codes that are neither vectors nor grids, "unet" for vector codes, or fewer than 2 codes.
          ArgumentError: an unknown denoiser, prediction or schedule, a size that is not a whole number above 0,
            a size of the other denoiser (``width`` for the MLP, ``hidden`` for the U-Net), or smoothing not >= 0.
        """
        codes = np.asarray(codes, "float32")
        if codes.ndim not in (2, 4):
            raise TfvaeError(f"the diffusion sampler fits vector codes (n, d) or grids (n, h, w, c), not an array of "
                             f"shape {codes.shape}")
        if len(codes) < 2:
            raise TfvaeError(f"the diffusion sampler needs at least 2 training codes, not {len(codes)}")
        _choice("denoiser", denoiser, DENOISERS)
        _choice("prediction", prediction, PREDICTIONS)
        _choice("schedule", schedule, SCHEDULES)
        if denoiser == "unet" and codes.ndim != 4:
            raise TfvaeError(f"denoiser='unet' convolves over code grids, but these codes are vectors of "
                             f"{codes.shape[1]} numbers; use denoiser='mlp'")
        count, d = len(codes), int(np.prod(codes.shape[1:]))
        code_shape = (d,) if denoiser == "mlp" else codes.shape[1:]  # what the network sees
        sizes = {"mlp": {"hidden": hidden, "blocks": blocks}, "unet": {"width": width, "levels": levels}}
        given = [f"{k}={v!r}" for k, v in sizes["unet" if denoiser == "mlp" else "mlp"].items() if v is not None]
        if given:
            raise ArgumentError(given[0].split("=")[0], f"{', '.join(given)} given, but denoiser={denoiser} does not "
                                                        f"take it (the MLP takes hidden and blocks, the U-Net width "
                                                        f"and levels)")
        defaults = {"hidden": min(max(HIDDEN_BOUNDS[0], 4 * d), HIDDEN_BOUNDS[1]), "blocks": 3, "width": UNET_WIDTH,
                    "levels": UNET_LEVELS}
        # A size given as 0 is refused below, not replaced by its default.
        network_sizes = {k: defaults[k] if v is None else v for k, v in sizes[denoiser].items()}
        steps = steps or cls.default_steps(count, batch_size)
        for name, value in (*network_sizes.items(), ("steps", steps), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ArgumentError(name, f"{name}={value!r}: the diffusion sampler takes a whole number above 0")
        smoothing = check_smoothing(smoothing)
        shift = codes.mean(axis=0)
        scale = codes.std(axis=0) + 1e-6
        c = ((codes - shift) / scale).reshape(count, *code_shape)  # shift, scale: a code's shape, kept for draws

        rng = np.random.default_rng(seed)
        order = rng.permutation(count)
        held = count // 10
        held_out, train = c[order[:held]], c[order[held:]]
        batch_size = min(batch_size, len(train))

        if denoiser == "mlp":
            initial = initial_params(d, *network_sizes.values(), embed, seed)  # hidden, blocks
            network = functools.partial(denoise, ops=TENSORFLOW)
        else:
            initial = unet.initial_params(code_shape[-1], *network_sizes.values(), embed, seed)  # width, levels
            network = unet.denoise
        names = sorted(initial)
        shapes = [initial[k].shape for k in names]
        sizes = [int(np.prod(shape)) for shape in shapes]
        flat = np.concatenate([initial[k].ravel() for k in names])
        # One flat vector of weights, with Adam's moments and the EMA beside it: a handful of ops an update.
        theta = tf.Variable(flat, name="theta")
        averaged = tf.Variable(flat, name="theta_ema", trainable=False)
        first_moment = tf.Variable(np.zeros_like(flat), trainable=False)
        second_moment = tf.Variable(np.zeros_like(flat), trainable=False)
        warmup = min(warmup, max(steps // 10, 1))

        rank = 1 + len(code_shape)

        def unpack(vector):
            return {k: tf.reshape(part, shape) for k, part, shape in zip(names, tf.split(vector, sizes), shapes)}

        def loss_of(weights, batch, t, e):
            c_t = noised(batch, t, e, schedule, TENSORFLOW)
            if prediction == "v":
                alpha, sigma = (per_code(v, rank) for v in alpha_sigma(t, schedule, TENSORFLOW))
                target = alpha * e - sigma * batch
            else:
                target = e
            error = tf.square(target - network(weights, c_t, t))
            return tf.reduce_mean(tf.reduce_sum(error, axis=list(range(1, rank))))

        def step(batch, k):
            noise_seed = tf.stack([tf.constant(seed, tf.int64), k])
            t = tf.random.stateless_uniform(tf.shape(batch)[:1], seed=noise_seed)
            e = tf.random.stateless_normal(tf.shape(batch), seed=noise_seed + 1)
            if smoothing:  # a fresh blur of the codes every update
                batch = batch + smoothing * tf.random.stateless_normal(tf.shape(batch), seed=noise_seed + 2)
            with tf.GradientTape() as tape:
                loss = loss_of(unpack(theta), batch, t, e)
            gradient = tape.gradient(loss, theta)
            # Adam (Kingma & Ba 2015: beta_1 0.9, beta_2 0.999, epsilon 1e-7 as Keras's), learning rate warmed up
            # linearly, then decayed to 0 along a cosine.
            n = tf.cast(k, tf.float32) + 1.0
            rate = learning_rate * tf.minimum(n / warmup, 0.5 * (1.0 + tf.cos(
                math.pi * tf.clip_by_value((n - warmup) / max(steps - warmup, 1), 0.0, 1.0))))
            first_moment.assign(0.9 * first_moment + 0.1 * gradient)
            second_moment.assign(0.999 * second_moment + 0.001 * tf.square(gradient))
            corrected = first_moment / (1.0 - tf.pow(0.9, n))
            theta.assign_sub(rate * corrected / (tf.sqrt(second_moment / (1.0 - tf.pow(0.999, n))) + 1e-7))
            beta = tf.minimum(tf.constant(ema, tf.float32), n / (9.0 + n))
            averaged.assign(beta * averaged + (1.0 - beta) * theta)
            return loss

        @tf.function(input_signature=[tf.TensorSpec([None, batch_size, *code_shape], tf.float32),
                                      tf.TensorSpec([], tf.int64)])
        def run_steps(batches, first_step):  # one trace, whatever the number of updates a call makes
            # Many updates in one call: the Python loop of per-step calls costs more than the small network's maths.
            loss = tf.constant(0.0)
            for i in tf.range(tf.shape(batches)[0]):
                loss = step(batches[i], first_step + tf.cast(i, tf.int64))
            return loss

        check_codes = held_out if held else train
        fixed = np.random.default_rng([seed, 1])
        repeats = np.repeat(check_codes, max(1, min(HELD_OUT_DRAWS, HELD_OUT_ROWS // len(check_codes))), axis=0)
        check_t = ((np.arange(len(repeats)) + fixed.uniform(size=len(repeats))) / len(repeats)).astype("float32")
        check_e = fixed.standard_normal(repeats.shape).astype("float32")
        if smoothing:  # one fixed blur of each held-out draw: the loss of the density being fitted
            repeats = (repeats + smoothing * fixed.standard_normal(repeats.shape)).astype("float32")
        check_args = (tf.constant(repeats), tf.constant(fixed.permutation(check_t)), tf.constant(check_e))

        @tf.function
        def check_loss(batch, t, e):
            return loss_of(unpack(averaged), batch, t, e)

        per_epoch = max(len(train) // batch_size, 1)
        every = max(steps // CHECKS, 1)
        best, best_params, checks, since_best, done = math.inf, None, [], 0, 0
        started = time.perf_counter()
        while done < steps:
            take = min(every, steps - done)
            passes = -(-take // per_epoch)
            picks = np.concatenate([rng.permutation(len(train))[:per_epoch * batch_size] for _ in range(passes)])
            batches = tf.constant(train[picks[:take * batch_size]].reshape(take, batch_size, *code_shape))
            loss = float(run_steps(batches, tf.constant(done, tf.int64)))
            done += take
            if not math.isfinite(loss):
                raise FloatingPointError(f"the diffusion sampler's training loss is not finite ({loss})")
            held_loss = float(check_loss(*check_args)) / d
            checks.append((done, loss / d, held_loss))
            if held_loss < best:
                best, since_best = held_loss, 0
                best_params = averaged.numpy()
            else:
                since_best += 1
                if held and since_best >= PATIENCE:
                    break
        if not held:  # nothing held out: the last EMA weights
            best_params = averaged.numpy()
        parts = np.split(best_params, np.cumsum(sizes)[:-1])
        best_params = {k: part.reshape(shape) for k, part, shape in zip(names, parts, shapes)}
        history = {"denoiser": denoiser, **network_sizes, "steps": steps, "steps_done": done, "batch_size": batch_size,
                   "smoothing": smoothing, "held_out": held,
                   "best_step": min(checks, key=lambda row: row[2])[0] if held else done,
                   "held_out_loss": best if held else checks[-1][2], "final_train_loss": checks[-1][1],
                   "fit_seconds": time.perf_counter() - started}
        return cls(shift, scale, best_params, schedule, prediction, history)

    def settings(self):
        return {"prediction": self.prediction, "schedule": self.schedule, **self.history}

    def state(self):
        return {"shift": self.shift, "scale": self.scale, **self.params}

    @classmethod
    def from_state(cls, arrays, settings=None):
        settings = settings or {}
        params = {k: v for k, v in arrays.items() if k not in ("shift", "scale")}
        return cls(arrays["shift"], arrays["scale"], params, settings.get("schedule", "cosine"),
                   settings.get("prediction", "v"))

    def with_draw_settings(self, diffusion_steps=None, solver=None):
        """This fitted sampler drawing with ``diffusion_steps`` steps of ``solver`` (None: this one's; the weights
        shared, not copied)."""
        other = copy.copy(self)
        if diffusion_steps is not None:
            other.diffusion_steps = check_diffusion_steps(diffusion_steps)
        if solver is not None:
            other.solver = solvers.check_solver(solver)
        return other

    def denoised(self, c, t):
        """(c_0^, e^) at standardised codes ``c`` (n, *code_shape) and one time ``t`` (numpy, float32)."""
        t_array = np.full(1, t, "float32")
        alpha, sigma = (np.float32(v[0]) for v in alpha_sigma(t_array, self.schedule))
        return estimates(self._output(c, t_array), c, alpha, sigma, self.prediction)

    def _output(self, c, t):
        if self.denoiser == "mlp":  # numpy's ops: a few small matrix products, over the code flattened
            return denoise(self.params, c.reshape(len(c), -1), t).reshape(c.shape)
        if self._network is None:
            self._network = unet.evaluator(self.params, self.code_shape)
        return self._network(c, t)

    def sample(self, n, seed=0, temperature=1.0, diffusion_steps=None, solver=None):
        """``n`` codes, float32 (n, *code_shape): c_1 = tau e, e ~ N(0, I) seeded by ``seed`` (tau the
        ``temperature``), carried to c_0 by ``diffusion_steps`` steps of ``solver`` (defaults: the sampler's; module
        docstring); z = shift + scale * c_0^."""
        temperature = picture_arrays.check_temperature(temperature)
        steps = self.diffusion_steps if diffusion_steps is None else check_diffusion_steps(diffusion_steps)
        solver = self.solver if solver is None else solvers.check_solver(solver)
        c = picture_arrays.prior_samples(n, self.latent, seed).reshape((n, *self.code_shape))
        c = solvers.solve(self.denoised, c * np.float32(temperature), steps, self.schedule, solver)
        return (self.shift + self.scale * c).astype("float32")
