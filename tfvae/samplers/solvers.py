r"""Solvers of the probability-flow ODE that turn a fitted diffusion model's noise into codes
(``tfvae.samplers.diffusion`` fits the model; its docstring states the process and the schedules).

Both solvers integrate the same deterministic path from c_1 = tau e (e ~ N(0, I), tau the temperature) to c_0, the
probability-flow ODE of the variance-preserving process (Song et al. 2021, "Score-based generative modeling through
SDEs"), in K steps t_0 = 1 > t_1 > ... > t_K = 0. With lambda_t = log(alpha_t / sigma_t) (half the log SNR) and
the network's clean-code estimate x_i = c_0^(c_{t_i}, t_i), the exact solution from t to s < t is (Lu et al. 2022,
"DPM-Solver++: Fast solver for guided sampling of diffusion probabilistic models")

    c_s = (sigma_s / sigma_t) c_t + sigma_s \int_{lambda_t}^{lambda_s} e^lambda c_0^(c_lambda, lambda) d lambda,

and the solvers differ in how they approximate c_0^ over the step (h = lambda_s - lambda_t > 0):

  ``ddim`` (Song, Meng & Ermon 2021, "Denoising diffusion implicit models", eta = 0): c_0^ constant at x_i,
    c_s = (sigma_s / sigma_t) c_t - alpha_s (e^-h - 1) x_i = alpha_s x_i + sigma_s e^_i, the first-order solver,
    over steps uniform in t, as DDIM takes them;
  ``dpmpp_2m`` (DPM-Solver++(2M), the paper's multistep second-order solver): c_0^ linear in lambda through the last two
    estimates, D_i = (1 + 1 / (2 r_i)) x_i - (1 / (2 r_i)) x_{i-1} with r_i = h_{i-1} / h_i, in the same update
    (the first step, with no x_{i-1}, is DDIM's); second order for one network evaluation a step, over steps
    uniform in lambda (the paper's choice for low-resolution data).

The last step (to t = 0, where sigma_0 / sigma_t is about 0) returns the clean estimate x_{K-1}, as DDIM does.
A second-order solver follows the same path in fewer steps (docs/sampling.md measures what that buys on a code
grid).
"""

import math

import numpy as np

from tfvae.errors import ArgumentError
from tfvae.samplers.denoiser import LOGSNR_RANGE, alpha_sigma

SOLVERS = ("dpmpp_2m", "ddim")
SOLVER = "dpmpp_2m"
DIFFUSION_STEPS = 50  # a draw's steps
_GRID = 4097  # times on which a schedule's lambda is tabulated to invert it


def check_diffusion_steps(steps):
    """``steps`` as an int: a whole number of solver steps, at least 1.

    Raises:
      ArgumentError: anything else.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ArgumentError("diffusion_steps", f"diffusion_steps={steps!r}: the diffusion sampler takes a whole number "
                                               f"of steps, at least 1 (default {DIFFUSION_STEPS})")
    return int(steps)


def check_solver(solver):
    """``solver`` if it is one of ``SOLVERS``.

    Raises:
      ArgumentError: anything else.
    """
    if solver not in SOLVERS:
        raise ArgumentError("solver", f"solver={solver!r}: the diffusion sampler draws with one of "
                                      f"{', '.join(SOLVERS)} (default {SOLVER})")
    return solver


def half_log_snr(t, schedule):
    """lambda_t = log(alpha_t / sigma_t) at times ``t`` (numpy), clipped to half the cosine schedule's truncation
    (``LOGSNR_RANGE``; the linear schedule's lambda_0 is infinite, sigma_0 being 0)."""
    alpha, sigma = alpha_sigma(np.asarray(t, "float64"), schedule)
    with np.errstate(divide="ignore"):
        return np.clip(np.log(alpha) - np.log(sigma), 0.5 * LOGSNR_RANGE[0], 0.5 * LOGSNR_RANGE[1])


def times(steps, solver, schedule):
    """The K + 1 times 1 = t_0 > ... > t_K = 0 of a draw: uniform in t for ``ddim``; for ``dpmpp_2m``, t_0 ... t_{K-1}
    uniform in lambda between lambda_1 and lambda_0 (``half_log_snr``'s, tabulated on a fine grid of t and inverted
    by interpolation, so any schedule whose lambda falls with t works), and t_K = 0."""
    if check_solver(solver) == "ddim":
        return np.linspace(1.0, 0.0, steps + 1)
    grid = np.linspace(0.0, 1.0, _GRID)
    lam = half_log_snr(grid, schedule)  # falling with t
    wanted = np.linspace(lam[-1], lam[0], steps + 1)
    result = np.interp(wanted, lam[::-1], grid[::-1])
    result[0], result[-1] = 1.0, 0.0
    return result


def solve(denoised, c, steps, schedule, solver=SOLVER):
    """The codes at t = 0 reached from ``c`` (at t = 1) in ``steps`` steps of ``solver`` (module docstring).

    Args:
      denoised: (c_t, t) -> (c_0^, e^), the fitted model's estimates at one time t (numpy, float32).
      c: the start, float32 (n, ...), tau e.
      steps: K, at least 1.
      schedule: the model's noise schedule (``tfvae.samplers.denoiser.SCHEDULES``).
      solver: one of ``SOLVERS``.
    """
    path = times(steps, solver, schedule)
    previous = None  # (x_{i-1}, h_{i-1}) for the second-order step
    for t, s in zip(path[:-1], path[1:]):
        clean, noise = denoised(c, t)
        if s == 0.0:
            return clean
        if solver == "ddim":
            alpha_s, sigma_s = alpha_sigma(np.float32(s), schedule)
            c = (np.float32(alpha_s) * clean + np.float32(sigma_s) * noise).astype("float32")
            continue
        (alpha_t, sigma_t), (alpha_s, sigma_s) = (
            (float(v) for v in alpha_sigma(np.float64(u), schedule)) for u in (t, s))
        h = math.log(alpha_s / sigma_s) - math.log(alpha_t / sigma_t)
        estimate = clean
        if previous is not None:
            half_over_r = 0.5 * h / previous[1]  # 1 / (2 r_i)
            estimate = (1.0 + half_over_r) * clean - half_over_r * previous[0]
        c = (np.float32(sigma_s / sigma_t) * c - np.float32(alpha_s * math.expm1(-h)) * estimate).astype("float32")
        previous = (clean, h)
    return c
