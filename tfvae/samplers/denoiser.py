"""The diffusion process and the denoiser network behind ``tfvae.samplers.diffusion`` (whose docstring states the
maths): the noise schedules alpha_t, sigma_t (cosine: Nichol & Dhariwal 2021; linear: Ho et al. 2020, in continuous
time), the forward noising (and the fit's blur of the codes), and the denoiser, an MLP of residual blocks with a
sinusoidal time embedding over vector codes (Preechakul et al. 2022, DiffAE), as plain arrays of weights evaluated
with numpy's ops or TensorFlow's (``ops=NUMPY`` or ``TENSORFLOW``).
"""

import math
from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from tfvae.errors import ArgumentError
from tfvae.picture_arrays import is_number

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("eps", "v")
LOGSNR_RANGE = (-10.0, 10.0)  # the cosine schedule's truncation
LINEAR_BETAS = (0.1, 20.0)  # beta_0, beta_1 of the continuous-time linear schedule
TIME_SCALE = 1000.0  # t is embedded as 1000 t, DDPM's step index


def _sigmoid_np(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow warning for large |v|


NUMPY = SimpleNamespace(sin=np.sin, cos=np.cos, exp=np.exp, log=np.log, tan=np.tan, sqrt=np.sqrt,
                        sigmoid=_sigmoid_np, expm1=np.expm1,
                        mean=lambda h: h.mean(axis=-1, keepdims=True),
                        concat=lambda parts: np.concatenate(parts, axis=-1))
TENSORFLOW = SimpleNamespace(sin=tf.sin, cos=tf.cos, exp=tf.exp, log=tf.math.log, tan=tf.tan, sqrt=tf.sqrt,
                             sigmoid=tf.sigmoid, expm1=tf.math.expm1,
                             mean=lambda h: tf.reduce_mean(h, axis=-1, keepdims=True),
                             concat=lambda parts: tf.concat(parts, axis=-1))


def alpha_sigma(t, schedule, ops=NUMPY):
    """(alpha_t, sigma_t) of ``schedule`` ("cosine" or "linear") at times ``t`` in [0, 1] (module docstring)."""
    if schedule == "cosine":
        low, high = LOGSNR_RANGE
        b = math.atan(math.exp(-0.5 * high))
        a = math.atan(math.exp(-0.5 * low)) - b
        logsnr = -2.0 * ops.log(ops.tan(a * t + b))
        return ops.sqrt(ops.sigmoid(logsnr)), ops.sqrt(ops.sigmoid(-logsnr))
    if schedule == "linear":
        beta_0, beta_1 = LINEAR_BETAS
        integral = beta_0 * t + 0.5 * (beta_1 - beta_0) * t * t
        return ops.exp(-0.5 * integral), ops.sqrt(-ops.expm1(-integral))
    raise ArgumentError("schedule", f"schedule={schedule!r}: choose one of {', '.join(SCHEDULES)}")


def noised(c_0, t, e, schedule, ops=NUMPY):
    """The forward process's draw c_t = alpha_t c_0 + sigma_t e of codes ``c_0`` (n, d) or grids (n, h, w, c) at
    times ``t`` (n,) with noise ``e`` of their shape: a draw of q(c_t | c_0) = N(alpha_t c_0, sigma_t^2 I) when
    e ~ N(0, I)."""
    alpha, sigma = (per_code(v, len(c_0.shape)) for v in alpha_sigma(t, schedule, ops))
    return alpha * c_0 + sigma * e


def check_smoothing(smoothing):
    """``smoothing`` as a float, or ArgumentError unless it is a number >= 0 (the blur of the standardised codes
    that a fit adds, ``tfvae.samplers.diffusion``)."""
    if not is_number(smoothing) or smoothing < 0:
        raise ArgumentError("smoothing", f"smoothing={smoothing!r}: the diffusion sampler takes a number >= 0 (the "
                                         f"blur of the codes, in units of each number's spread; 0: none)")
    return float(smoothing)


def per_code(v, rank):
    """(n,) values shaped (n, 1, ...) to multiply codes of ``rank`` dimensions (the batch's included), one each."""
    return v[(slice(None),) + (None,) * (rank - 1)]


def _layer_norm(h, ops):
    centred = h - ops.mean(h)
    return centred / ops.sqrt(ops.mean(centred * centred) + 1e-5)


def _silu(v, ops):
    return v * ops.sigmoid(v)


def blocks_of(params):
    """How many residual blocks the weights ``params`` hold."""
    count = 0
    while f"block{count}_kernel_0" in params:
        count += 1
    return count


def time_embedding(params, t, ops=NUMPY):
    """m: the times ``t`` (n,) embedded as sinusoids of 1000 t and mapped by the two SiLU layers ``time_kernel_0``
    and ``time_kernel_1`` (module docstring of ``tfvae.samplers.diffusion``), (n, width)."""
    half = params["time_kernel_0"].shape[0] // 2
    frequencies = np.exp(-math.log(10000.0) * np.arange(half) / half).astype("float32")
    angles = TIME_SCALE * t[:, None] * frequencies[None, :]
    m = ops.concat([ops.sin(angles), ops.cos(angles)])
    m = _silu(m @ params["time_kernel_0"] + params["time_bias_0"], ops)
    return _silu(m @ params["time_kernel_1"] + params["time_bias_1"], ops)


def denoise(params, c, t, ops=NUMPY):
    """The network's output f(c_t, t) (the eps or v estimate), (n, d), for codes ``c`` (n, d) at times ``t`` (n,)
    (or (1,): one time for all, its embedding computed once).

    ``params`` maps the weights' names to arrays (numpy's ``ops``) or tensors (TensorFlow's); the module
    docstring gives the architecture.
    """
    m = time_embedding(params, t, ops)
    h = c @ params["in_kernel"] + params["in_bias"]
    for i in range(blocks_of(params)):
        u = _layer_norm(h, ops) @ params[f"block{i}_kernel_0"] + params[f"block{i}_bias_0"]
        u = _silu(u + m @ params[f"block{i}_time_kernel"] + params[f"block{i}_time_bias"], ops)
        h = h + u @ params[f"block{i}_kernel_1"] + params[f"block{i}_bias_1"]
    return _silu(_layer_norm(h, ops), ops) @ params["out_kernel"] + params["out_bias"]


def estimates(output, c_t, alpha, sigma, prediction):
    """(c_0^, e^): the clean code and the noise the network's ``output`` at (c_t, t) implies."""
    if prediction == "v":
        return alpha * c_t - sigma * output, sigma * c_t + alpha * output
    return (c_t - sigma * output) / alpha, output


def initial_params(d, hidden, blocks, embed, seed):
    """Glorot-uniform kernels (the output layer's at 0) and zero biases, float32, from ``seed``."""
    rng = np.random.default_rng(seed)

    def glorot(fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype("float32")

    params = {"time_kernel_0": glorot(embed, hidden), "time_kernel_1": glorot(hidden, hidden),
              "in_kernel": glorot(d, hidden), "out_kernel": np.zeros((hidden, d), "float32")}
    for i in range(blocks):
        params[f"block{i}_kernel_0"] = glorot(hidden, hidden)
        params[f"block{i}_time_kernel"] = glorot(hidden, hidden)
        params[f"block{i}_kernel_1"] = glorot(hidden, hidden)
    for name in list(params):
        params[name.replace("kernel", "bias")] = np.zeros(params[name].shape[1], "float32")
    return params


def check_shapes(shift, scale, params):
    """Raises ValueError unless the weights fit together: a code of size d, blocks ``hidden`` wide."""
    d = shift.shape[0] if shift.ndim == 1 else -1
    hidden = params["in_kernel"].shape[-1]
    expected = {"in_kernel": (d, hidden), "in_bias": (hidden,), "out_kernel": (hidden, d), "out_bias": (d,),
                "time_kernel_0": (params["time_kernel_0"].shape[0], hidden), "time_bias_0": (hidden,),
                "time_kernel_1": (hidden, hidden), "time_bias_1": (hidden,)}
    for i in range(blocks_of(params)):
        expected.update({f"block{i}_{name}": (hidden, hidden) for name in ("kernel_0", "kernel_1", "time_kernel")})
        expected.update({f"block{i}_{name}": (hidden,) for name in ("bias_0", "bias_1", "time_bias")})
    wrong = [f"{name} {params[name].shape if name in params else 'missing'}, not {shape}"
             for name, shape in expected.items() if name not in params or params[name].shape != shape]
    if d < 1 or scale.shape != shift.shape or params["time_kernel_0"].shape[0] % 2 or wrong:
        raise ValueError(f"the denoiser's weights do not fit together (shift {shift.shape}, scale {scale.shape}"
                         f"{', ' if wrong else ''}{', '.join(wrong[:2])})")
