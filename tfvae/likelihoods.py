r"""The decoders' pixel distributions: what a decoder's outputs mean, their log-probabilities, means and draws.

Pixels x are the 8-bit values k / 255, k = 0..255, of images scaled to [0, 1]; each lies in the bin
[x - w/2, x + w/2] of width w = 1/255 (``BIN``). The decoder emits parameters (never a sigmoid inside the
network), channels last, laid out per likelihood:

* ``bernoulli`` and ``gaussian`` (losses bce, mse, gaussian): C logits l, mean sigmoid(l) (the variance of
  ``gaussian`` is one shared number, held by the decoder's ``DecoderVariance`` layer).
* ``gaussian_pixel``: 2C values, the mean's logits l then a raw log-variance r per pixel and channel:
  sigma^2 = VARIANCE_MIN + exp(clip(r, LOG_VAR_MIN, LOG_VAR_MAX)), a smooth floor at the variance of the
  quantisation noise of 8-bit pixels, 1 / (12 * 255^2): a density narrower than one 8-bit step is no density
  of 8-bit images (and the training density could then grow without bound on flat backgrounds).
* ``logistic_mixture``: K (1 + 2C + C(C-1)/2) values, K = ``LOGISTIC_COMPONENTS``: the mixture's logits
  (K), then the components' locations mu (K C, component-major), their log-scales (K C) and the channel
  couplings (K C(C-1)/2): 10 K for colour images, as in PixelCNN++.

The discretized logistic mixture (Salimans et al. 2017, PixelCNN++)
---------------------------------------------------------------------
Each pixel is a mixture of K components with weights pi = softmax(mixture logits), shared by the pixel's C
channels, so a component is one colour. Within a component the channels are coupled linearly, as PixelCNN++
does: channel c's location is mu_c + sum_{j<c} tanh(a_cj) x_j, the earlier channels' observed values (for RGB:
green depends on red, blue on red and green). The pixel's joint probability is then still exact (a product of
conditionals), and a component can tilt its colour along the image's local colour direction instead of
needing one component per shade; for one channel there is no coupling. A channel's value is a logistic
L(mu, s) discretized to the 256 bins, the two end bins taking the tails:

    P(k) = sigma(a) - sigma(b)            for 0 < k < 255,  a = (x + w/2 - mu) / s,  b = (x - w/2 - mu) / s,
    P(0) = sigma(a),     P(255) = 1 - sigma(b),

so the 256 probabilities telescope to exactly 1. Computed stably without a branch on the bin's mass:
sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^{b-a}), hence

    log P(k) = -softplus(-a) - softplus(b) + log(-expm1(-w / s)),

(log-sigmoids and an expm1 of the bin width in scales, both finite for every x and mu), log P(0) =
-softplus(-a) and log P(255) = -softplus(b). The log-scales are clipped to [LOG_SCALE_MIN, LOG_SCALE_MAX];
LOG_SCALE_MIN makes s an eighth of a bin, below which a bin's probability is ~1 anyway. The pixel's
log-probability is logsumexp_k(log pi_k + sum_c log P_k(x_c | x_<c)), and the image's the sum over pixels.

Decoding to a picture uses the distribution's mean, as the Gaussian decoders do (the point estimate with the
least expected squared error, which the MSE and PSNR of evaluate.py then measure): sum_k pi_k m_k, where a
component's mean m_k per channel is that of its logistic censored to [0, 1], s (softplus(mu / s) -
softplus((mu - 1) / s)) (the integral of its survival function over [0, 1]; the 8-bit rounding moves it by far
less than a bin), with a coupled channel's location taken at the earlier channels' component means (exact
while those lie away from 0 and 1, where the censoring bends the mean). ``sample`` draws 8-bit images:
a component per pixel, then the channels in order from the logistic's inverse CDF, rounded to the bins.

Honest 8-bit likelihoods
------------------------
``log_prob_8bit`` is -log P of the 8-bit image for every decoder that defines one, so the numbers of all of
them are comparable (nats per image, bits/dim = nats / (D ln 2)). The logistic mixture is already a
distribution over the 256 values. A Gaussian decoder N(mu, sigma^2) is a density on the real line; its 8-bit
probability is its mass over the pixel's bin, the end bins taking the tails (the discretized Gaussian):

    P(k) = Phi((x + w/2 - mu) / sigma) - Phi((x - w/2 - mu) / sigma),  P(0) = Phi(a),  P(255) = 1 - Phi(b),

computed in float64 from log Phi (``log_ndtr``), reflected into the lower tail (where log Phi is accurate),
with log(Phi(hi) - Phi(lo)) = log Phi(hi) + log(-expm1(log Phi(lo) - log Phi(hi))). It never exceeds 1,
unlike "density x bin width", which does once sigma is under ~0.4 bins (a floored per-pixel variance on a flat
background): density x w = 1.38 at sigma^2 = VARIANCE_MIN. The Gaussians still train on their density (a smooth
objective, the sigma-VAE's); only the reported likelihood is discretized. Bernoulli (bce) is a distribution of
binary pixels: on binarized images it is their probability, but on grey-level or colour images it is a
cross-entropy to the grey levels, no probability of the 8-bit values at all (its minimum, the pixels' binary
entropy, is not 0), so no 8-bit likelihood is reported for it.
"""

import math

import tensorflow as tf
from keras import ops

LIKELIHOOD_OF_LOSS = {"bce": "bernoulli", "mse": "gaussian", "gaussian": "gaussian",
                      "gaussian_pixel": "gaussian_pixel", "logistic_mixture": "logistic_mixture"}
LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_pixel", "logistic_mixture")
PIXEL_LEVELS = 256
BIN = 1.0 / (PIXEL_LEVELS - 1)  # the width of an 8-bit pixel's bin on [0, 1]
VARIANCE_MIN = BIN**2 / 12.0  # the variance of uniform noise over one bin: 1 / (12 * 255^2)
LOG_VAR_MIN, LOG_VAR_MAX = -30.0, 5.0  # a raw log-variance's range: exp stays finite in float32
LOGISTIC_COMPONENTS = 5
LOG_SCALE_MIN = math.log(BIN / 8.0)  # a logistic's scale: at least an eighth of a bin
LOG_SCALE_MAX = 5.0
_LOG_NDTR_SWITCH = -20.0  # below it, log Phi from its asymptotic series (erfc underflows in float64 near -38)


def for_loss(loss):
    """The decoder likelihood a training loss implies (``LIKELIHOOD_OF_LOSS``); ValueError for another loss."""
    if loss not in LIKELIHOOD_OF_LOSS:
        raise ValueError(f"unknown reconstruction loss {loss!r}; choose one of {', '.join(LIKELIHOOD_OF_LOSS)}")
    return LIKELIHOOD_OF_LOSS[loss]


def output_channels(likelihood, channels, components=LOGISTIC_COMPONENTS):
    """How many values per pixel a decoder with ``likelihood`` emits for images of ``channels`` channels."""
    if likelihood in ("bernoulli", "gaussian"):
        return channels
    if likelihood == "gaussian_pixel":
        return 2 * channels
    if likelihood == "logistic_mixture":
        return components * (1 + 2 * channels + channels * (channels - 1) // 2)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def image_channels(likelihood, outputs_channels, components=LOGISTIC_COMPONENTS):
    """The image channels C of a decoder that emits ``outputs_channels`` values per pixel (``output_channels``
    inverted)."""
    for channels in range(1, outputs_channels + 1):
        if output_channels(likelihood, channels, components) == outputs_channels:
            return channels
    raise ValueError(f"a {likelihood} decoder can't emit {outputs_channels} values per pixel")


# -- Gaussian with a variance per pixel ---------------------------------------------------------------------


def gaussian_pixel_parameters(outputs):
    """(mean in (0, 1), variance >= VARIANCE_MIN) of a ``gaussian_pixel`` decoder's outputs, each (B, H, W, C)."""
    outputs = ops.cast(outputs, "float32")
    channels = outputs.shape[-1] // 2
    logits, raw = outputs[..., :channels], outputs[..., channels:]
    return ops.sigmoid(logits), VARIANCE_MIN + ops.exp(ops.clip(raw, LOG_VAR_MIN, LOG_VAR_MAX))


def gaussian_pixel_nll(x, outputs):
    """-log N(x; mean, diag(variance)) of each image, the density the decoder trains on, in nats (B,).

    Per value 1/2 log(2 pi sigma^2) + (x - mean)^2 / (2 sigma^2), summed over pixels and channels.
    """
    x = ops.cast(x, "float32")
    mean, variance = gaussian_pixel_parameters(outputs)
    per_value = 0.5 * ops.log(2.0 * math.pi * variance) + ops.square(x - mean) / (2.0 * variance)
    return ops.sum(ops.reshape(per_value, (ops.shape(x)[0], -1)), axis=-1)


# -- the discretized Gaussian (8-bit probabilities of a Gaussian decoder) -------------------------------------


def log_ndtr(t):
    """log Phi(t), the standard normal's log-CDF, accurate in both tails (float64)."""
    t = _float64(t)
    low = t < _LOG_NDTR_SWITCH
    # Each branch sees only its own range, so neither makes an inf or a NaN gradient that `where` would pass on.
    t_mid = tf.where(low, tf.constant(_LOG_NDTR_SWITCH, tf.float64), t)
    t_low = tf.where(low, t, tf.constant(_LOG_NDTR_SWITCH, tf.float64))
    mid = tf.math.log(0.5 * tf.math.erfc(-t_mid / math.sqrt(2.0)))
    inv2 = 1.0 / tf.square(t_low)  # Phi(t) ~ phi(t) / -t (1 - 1/t^2 + 3/t^4 - 15/t^6)
    tail = (-0.5 * tf.square(t_low) - tf.math.log(-t_low) - 0.5 * math.log(2.0 * math.pi)
            + tf.math.log1p(inv2 * (-1.0 + inv2 * (3.0 - 15.0 * inv2))))
    return tf.where(low, tail, mid)


def _float64(value):
    # tf.cast of a Python float or a numpy array goes through float32 first; a 7-sigma tail then moves by 1e-5.
    return tf.cast(value, tf.float64) if tf.is_tensor(value) else tf.constant(value, tf.float64)


def discretized_gaussian_log_prob(x, mean, variance):
    """log P(x) of 8-bit values under N(mean, variance) integrated over their bins (see the module docstring).

    Args:
      x: values k / 255; mean and variance broadcast against x.

    Returns:
      float64 tensor of x's shape, each value <= 0.
    """
    x, mean, sigma = _float64(x), _float64(mean), tf.sqrt(_float64(variance))
    upper = (x + 0.5 * BIN - mean) / sigma
    lower = (x - 0.5 * BIN - mean) / sigma
    reflect = lower > 0  # both ends above the mean: use 1 - Phi's symmetry, Phi(b) - Phi(a) = Phi(-a) - Phi(-b)
    hi = tf.where(reflect, -lower, upper)
    lo = tf.where(reflect, -upper, lower)
    log_hi = log_ndtr(hi)
    middle = log_hi + tf.math.log(-tf.math.expm1(log_ndtr(lo) - log_hi))
    bottom = log_ndtr(upper)  # k = 0: the whole lower tail
    top = log_ndtr(-lower)  # k = 255: the whole upper tail
    return tf.where(x < 0.5 * BIN, bottom, tf.where(x > 1.0 - 0.5 * BIN, top, middle))


# -- the discretized logistic mixture -----------------------------------------------------------------------


def logistic_mixture_parameters(outputs, channels, components=LOGISTIC_COMPONENTS):
    """The mixture's parameters from a ``logistic_mixture`` decoder's outputs (B, H, W, output_channels).

    Returns:
      dict of float32 tensors: ``logits`` (B, H, W, K), ``loc`` and ``log_scale`` (B, H, W, K, C) (log-scales
      clipped), ``coeffs`` (B, H, W, K, C(C-1)/2), tanh-squashed couplings in (-1, 1).
    """
    outputs = ops.cast(outputs, "float32")
    k, c = components, channels
    lead = ops.shape(outputs)[:-1]

    def piece(start, size, shape):
        return ops.reshape(outputs[..., start:start + size], (*lead, *shape))

    pairs = c * (c - 1) // 2
    return {"logits": outputs[..., :k], "loc": piece(k, k * c, (k, c)),
            "log_scale": ops.clip(piece(k + k * c, k * c, (k, c)), LOG_SCALE_MIN, LOG_SCALE_MAX),
            "coeffs": ops.tanh(piece(k + 2 * k * c, k * pairs, (k, pairs))) if pairs else None}


def _coupled_loc(loc, coeffs, values):
    """Channel c's location mu_c + sum_{j<c} coeff_cj values_j, per component: (..., K, C).

    ``values`` (..., K, C) are the earlier channels' values: the observed pixel (broadcast over K), a draw, or
    the components' means.
    """
    channels = loc.shape[-1]
    out, pair = [loc[..., 0]], 0
    for c in range(1, channels):
        m = loc[..., c]
        for j in range(c):
            m = m + coeffs[..., pair] * values[..., j]
            pair += 1
        out.append(m)
    return ops.stack(out, axis=-1)


def discretized_logistic_log_prob(x, loc, log_scale):
    """log P(x) of 8-bit values x under logistics L(loc, exp(log_scale)) discretized to the bins (float32)."""
    inv_scale = ops.exp(-log_scale)
    upper = (x + 0.5 * BIN - loc) * inv_scale
    lower = (x - 0.5 * BIN - loc) * inv_scale
    log_sig_upper = -ops.softplus(-upper)  # log sigmoid(upper)
    log_sig_neg_lower = -ops.softplus(lower)  # log (1 - sigmoid(lower))
    middle = log_sig_upper + log_sig_neg_lower + ops.log(-ops.expm1(-BIN * inv_scale))
    return ops.where(x < 0.5 * BIN, log_sig_upper, ops.where(x > 1.0 - 0.5 * BIN, log_sig_neg_lower, middle))


def logistic_mixture_pixel_log_prob(x, outputs, components=LOGISTIC_COMPONENTS):
    """log P of each pixel (all its channels) under the discretized logistic mixture, (B, H, W), float32."""
    x = ops.cast(x, "float32")
    p = logistic_mixture_parameters(outputs, x.shape[-1], components)
    xk = ops.expand_dims(x, -2)  # (B, H, W, 1, C): the same observed pixel for every component
    loc = p["loc"] if p["coeffs"] is None else _coupled_loc(p["loc"], p["coeffs"], xk)
    per_component = ops.sum(discretized_logistic_log_prob(xk, loc, p["log_scale"]), axis=-1)
    return ops.logsumexp(ops.log_softmax(p["logits"], axis=-1) + per_component, axis=-1)


def logistic_mixture_nll(x, outputs, components=LOGISTIC_COMPONENTS):
    """-log P(x) of each 8-bit image under the discretized logistic mixture, in nats (B,)."""
    per_pixel = logistic_mixture_pixel_log_prob(x, outputs, components)
    return -ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)


def _censored_logistic_mean(loc, log_scale):
    """E[clip(Y, 0, 1)] for Y ~ L(loc, s): the integral over [0, 1] of P(Y > t) = s (sp(loc / s) - sp((loc-1)/s))."""
    scale = ops.exp(log_scale)
    return scale * (ops.softplus(loc / scale) - ops.softplus((loc - 1.0) / scale))


# -- every decoder ------------------------------------------------------------------------------------------


def mean(outputs, likelihood):
    """The picture a decoder's outputs stand for: the distribution's mean, float32 in [0, 1] (B, H, W, C).

    Bernoulli and Gaussians: sigmoid of the mean's logits; the logistic mixture: its mean (module docstring).
    """
    if likelihood in ("bernoulli", "gaussian"):
        return ops.sigmoid(ops.cast(outputs, "float32"))
    if likelihood == "gaussian_pixel":
        return gaussian_pixel_parameters(outputs)[0]
    if likelihood == "logistic_mixture":
        channels = image_channels(likelihood, outputs.shape[-1])
        p = logistic_mixture_parameters(outputs, channels)
        loc, log_scale = p["loc"], p["log_scale"]
        if p["coeffs"] is not None:  # a coupled channel at the earlier channels' component means
            means = [_censored_logistic_mean(loc[..., 0], log_scale[..., 0])]
            for c in range(1, channels):
                coupled = _coupled_loc(loc[..., :c + 1], p["coeffs"], ops.stack(means, axis=-1))
                means.append(_censored_logistic_mean(coupled[..., c], log_scale[..., c]))
            component_means = ops.stack(means, axis=-1)
        else:
            component_means = _censored_logistic_mean(loc, log_scale)
        weights = ops.expand_dims(ops.softmax(p["logits"], axis=-1), -1)
        return ops.clip(ops.sum(weights * component_means, axis=-2), 0.0, 1.0)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def sample(outputs, likelihood, seed, variance=None):
    """Draws images from a decoder's distribution: 8-bit values k / 255 (binary ones for Bernoulli), float32.

    Args:
      outputs: the decoder's outputs (B, H, W, output_channels).
      likelihood: one of LIKELIHOODS.
      seed: an int, or a (2,) int tensor: stateless draws, the same for the same seed.
      variance: a ``gaussian`` decoder's shared variance.
    """
    seed = tf.constant([seed, 0], tf.int64) if isinstance(seed, int) else tf.cast(seed, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, 3)
    if likelihood == "bernoulli":
        probs = ops.sigmoid(ops.cast(outputs, "float32"))
        return tf.cast(tf.random.stateless_uniform(tf.shape(probs), seeds[0]) < probs, tf.float32)
    if likelihood in ("gaussian", "gaussian_pixel"):
        if likelihood == "gaussian":
            centre, var = ops.sigmoid(ops.cast(outputs, "float32")), ops.cast(variance, "float32")
        else:
            centre, var = gaussian_pixel_parameters(outputs)
        draw = centre + ops.sqrt(var) * tf.random.stateless_normal(tf.shape(centre), seeds[0])
        return _to_8bit(draw)
    if likelihood == "logistic_mixture":
        channels = image_channels(likelihood, outputs.shape[-1])
        p = logistic_mixture_parameters(outputs, channels)
        k = p["logits"].shape[-1]
        gumbel = -tf.math.log(-tf.math.log(tf.random.stateless_uniform(
            tf.shape(p["logits"]), seeds[0], minval=1e-7, maxval=1.0 - 1e-7)))
        pick = tf.one_hot(tf.argmax(p["logits"] + gumbel, axis=-1), k)[..., None]  # (B, H, W, K, 1)
        loc, log_scale = ops.sum(pick * p["loc"], axis=-2), ops.sum(pick * p["log_scale"], axis=-2)
        coeffs = None if p["coeffs"] is None else ops.sum(pick * p["coeffs"], axis=-2)
        u = tf.random.stateless_uniform(tf.shape(loc), seeds[1], minval=1e-7, maxval=1.0 - 1e-7)
        noise = ops.exp(log_scale) * (ops.log(u) - ops.log1p(-u))  # the logistic's inverse CDF
        values = []
        for c in range(channels):
            m = loc[..., c]
            for j in range(c):
                m = m + coeffs[..., c * (c - 1) // 2 + j] * values[j]
            values.append(_to_8bit(m + noise[..., c]))
        return ops.stack(values, axis=-1)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")


def _to_8bit(values):
    return ops.round(ops.clip(values, 0.0, 1.0) * (PIXEL_LEVELS - 1)) / (PIXEL_LEVELS - 1)


def log_prob_8bit(x, outputs, likelihood, variance=None):
    """log P(x) of 8-bit images (values k / 255) under a decoder's distribution, summed per image (B,), float32.

    The one 8-bit likelihood every report uses (see the module docstring): the discretized logistic mixture,
    or a Gaussian decoder's mass over each pixel's bin (``variance``: a ``gaussian`` decoder's shared one).
    Bernoulli has none: ValueError.
    """
    if likelihood == "logistic_mixture":
        return -logistic_mixture_nll(x, outputs)
    if likelihood == "gaussian":
        centre, var = ops.sigmoid(ops.cast(outputs, "float32")), variance
    elif likelihood == "gaussian_pixel":
        centre, var = gaussian_pixel_parameters(outputs)
    else:
        raise ValueError(f"a {likelihood} decoder defines no probability of 8-bit images")
    per_value = discretized_gaussian_log_prob(x, centre, var)
    return tf.cast(tf.reduce_sum(tf.reshape(per_value, (tf.shape(per_value)[0], -1)), axis=-1), tf.float32)
