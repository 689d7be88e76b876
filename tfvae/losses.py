r"""Loss terms of the (beta-)VAE, with explicit reductions.

For an image x with D pixels and a diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(log_var))), the
negative ELBO is

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),

estimated with one reparameterised sample z. With a Bernoulli decoder, -log p(x|z) is the binary
cross-entropy summed over the D pixels (the Keras example's "mean BCE x 28 * 28"), computed from logits
for numerical stability. The KL term has the closed form

    KL = -1/2 * sum_j (1 + log_var_j - mu_j^2 - exp(log_var_j)).

Every function here returns one value per example (summed over pixels or latent dimensions); the model
averages over the batch. beta weights the KL term (beta-VAE; beta = 1 is the ELBO) and ``recon_weight`` the
reconstruction term: 1 is the ELBO, 0 trains the KL term alone (the documents' "KL only" latent space, where
every posterior collapses onto the prior and the decoder gets no gradient).

Gaussian decoders
-----------------
A Gaussian decoder N(x; x_hat, sigma^2 I), x_hat = sigmoid(logits), has the per-image negative log-density

    -log p(x|z) = D/2 log(2 pi sigma^2) + SE / (2 sigma^2),    SE = sum over the D pixels of (x - x_hat)^2.

``mse`` is SE alone, i.e. this with the fixed sigma^2 = 1/2 (up to a constant): for colour images whose
per-pixel error is ~0.01-0.05 that weighs reconstruction 10-50x too little against the KL, and the posterior
stays near the prior. ``gaussian`` calibrates sigma^2 instead (Rybkin et al. 2021, "Simple and Effective VAE
Training with Calibrated Decoders", the sigma-VAE): one variance shared by all pixels, set to its analytic
optimum for the batch, the maximiser of the batch's likelihood,

    sigma^2* = sum_batch SE / (B D)        (the batch's mean squared error per pixel),

where the batch's mean loss becomes D/2 log(2 pi sigma^2*) + D/2. The paper's other variant learns log sigma
by gradient descent; the analytic one is used here because it is exact at every step: a learned log sigma
starting at sigma^2 = 1/2 moves ~learning-rate per Adam step, so a short run would spend its first hundreds
of steps at the wrong balance, and it adds no parameter to tune. sigma^2* is a plug-in estimate (no gradient
flows through it; at the optimum its derivative is zero anyway), floored at ``VARIANCE_MIN``, the variance of
the quantisation noise of 8-bit pixels: a narrower density than that is not a density of 8-bit images.

One shared variance lets the decoder trade the object for the background (issue 18): on a picture with a flat
background and a detailed object, sigma^2* is the image's average error, too wide for the background and too
narrow for the object. ``gaussian_pixel`` lets the decoder emit a variance per pixel and channel beside the
mean, learned through the density's gradient (a variance depends on z and on where the pixel is, so it has no
analytic optimum per batch), floored smoothly at ``VARIANCE_MIN``: its -log N(x; mean, diag(sigma^2)) is
``tfvae.likelihoods.gaussian_pixel_nll``. ``logistic_mixture`` is PixelCNN++'s discretized logistic mixture
of the 8-bit values (``tfvae.likelihoods.logistic_mixture_nll``), a probability of the 8-bit image rather than
a density. The maths, layouts and the 8-bit likelihoods every report uses are in ``tfvae.likelihoods``.
"""

import math

from keras import ops

from tfvae import likelihoods

RECONSTRUCTION_LOSSES = ("bce", "mse", "gaussian", "gaussian_pixel", "logistic_mixture")
VARIANCE_MIN = likelihoods.VARIANCE_MIN  # uniform noise over one 8-bit step of [0, 1] pixels
LOG_2PI = math.log(2.0 * math.pi)


def bernoulli_nll(x, logits):
    """Binary cross-entropy from logits, summed over all non-batch axes.

    Args:
      x: targets in [0, 1], shape (batch, ...).
      logits: decoder logits, same shape.

    Returns:
      Tensor of shape (batch,), in nats.
    """
    x = ops.cast(x, "float32")
    logits = ops.cast(logits, "float32")
    # softplus(l) - l * x = -x log s(l) - (1 - x) log(1 - s(l)). softplus is one stable kernel (it is
    # max(l, 0) + log1p(exp(-|l|))), so the loss and its gradient take 3 passes over the pixels, not 8.
    per_pixel = ops.softplus(logits) - logits * x
    return ops.sum(ops.reshape(per_pixel, (ops.shape(x)[0], -1)), axis=-1)


def squared_error(x, logits):
    """Sum of squared errors between x and sigmoid(logits), over all non-batch axes.

    This is the negative log-likelihood of a Gaussian decoder with variance 1/2, up to a constant.

    Returns:
      Tensor of shape (batch,).
    """
    x = ops.cast(x, "float32")
    diff = x - ops.sigmoid(ops.cast(logits, "float32"))
    return ops.sum(ops.reshape(ops.square(diff), (ops.shape(x)[0], -1)), axis=-1)


def gaussian_nll(squared_errors, num_pixels, variance):
    """-log N(x; x_hat, variance I) per example, from its summed squared error (see the module docstring).

    Args:
      squared_errors: (batch,) sums of squared errors over the example's pixels (``squared_error``).
      num_pixels: D, the number of values per example (height x width x channels).
      variance: sigma^2, a positive scalar shared by all pixels and examples.

    Returns:
      Tensor of shape (batch,), in nats: D/2 log(2 pi variance) + squared_errors / (2 variance).
    """
    variance = ops.cast(variance, "float32")
    return 0.5 * num_pixels * ops.log(2.0 * math.pi * variance) + ops.cast(squared_errors, "float32") / (
        2.0 * variance)


def optimal_variance(squared_errors, num_pixels):
    """The variance that maximises a batch's Gaussian likelihood: its mean squared error per pixel.

    Args:
      squared_errors: (batch,) sums of squared errors over the pixels.
      num_pixels: D, the number of values per example.

    Returns:
      Scalar float32 tensor, sum(squared_errors) / (batch D), at least ``VARIANCE_MIN``; no gradient flows
      through it.
    """
    variance = ops.mean(ops.cast(squared_errors, "float32")) / num_pixels
    return ops.stop_gradient(ops.maximum(variance, VARIANCE_MIN))


def reconstruction_loss(x, logits, kind="bce", variance=None):
    """Per-example reconstruction term in nats.

    Args:
      x: targets in [0, 1].
      logits: decoder logits.
      kind: "bce" (``bernoulli_nll``), "mse" (``squared_error``), "gaussian" (``gaussian_nll``),
        "gaussian_pixel" (``likelihoods.gaussian_pixel_nll``) or "logistic_mixture"
        (``likelihoods.logistic_mixture_nll``).
      variance: for "gaussian", the shared sigma^2; None: the batch's own optimum (``optimal_variance``).

    Returns:
      Tensor of shape (batch,).
    """
    if kind == "bce":
        return bernoulli_nll(x, logits)
    if kind == "mse":
        return squared_error(x, logits)
    if kind == "gaussian":
        errors = squared_error(x, logits)
        num_pixels = math.prod(int(d) for d in x.shape[1:])
        return gaussian_nll(errors, num_pixels, optimal_variance(errors, num_pixels) if variance is None else variance)
    if kind == "gaussian_pixel":
        return likelihoods.gaussian_pixel_nll(x, logits)
    if kind == "logistic_mixture":
        return likelihoods.logistic_mixture_nll(x, logits)
    raise ValueError(f"unknown reconstruction loss {kind!r}; choose one of {', '.join(RECONSTRUCTION_LOSSES)}")


def gaussian_kl_per_dim(z_mean, z_log_var):
    """KL(N(z_mean_j, exp(z_log_var_j)) || N(0, 1)) of each latent dimension j.

    Returns:
      Tensor of shape (batch, latent), in nats.
    """
    z_mean = ops.cast(z_mean, "float32")
    z_log_var = ops.cast(z_log_var, "float32")
    return -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))


def gaussian_kl(z_mean, z_log_var):
    """KL(N(z_mean, exp(z_log_var)) || N(0, I)), summed over latent dimensions.

    Returns:
      Tensor of shape (batch,), in nats.
    """
    return ops.sum(gaussian_kl_per_dim(z_mean, z_log_var), axis=-1)


def diagonal_gaussian_log_prob(z, mean, log_var):
    """log N(z; mean, diag(exp(log_var))), summed over the last (latent) axis; the arguments broadcast.

    Returns:
      float32 tensor of the broadcast shape without its last axis, in nats.
    """
    z, mean, log_var = (ops.cast(t, "float32") for t in (z, mean, log_var))
    return -0.5 * ops.sum(LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var), axis=-1)


def mixture_log_prob(z, means, log_vars):
    """log p(z) of the uniform mixture (1/K) sum_k N(z; means_k, diag(exp(log_vars_k))): a log-sum-exp over k.

    Args:
      z: codes, (..., latent).
      means, log_vars: the K components, (K, latent) each.

    Returns:
      float32 tensor (...), in nats.
    """
    z = ops.cast(z, "float32")
    per_component = diagonal_gaussian_log_prob(z[..., None, :], means, log_vars)  # (..., K)
    return ops.logsumexp(per_component, axis=-1) - ops.log(ops.cast(ops.shape(means)[0], "float32"))


def vae_loss(x, logits, z_mean=None, z_log_var=None, *, reconstruction="bce", beta=1.0, variance=None,
             recon_weight=1.0, kl=None):
    """The documents' ``vae_loss``, per image: recon_weight * reconstruction + beta * KL (the negative ELBO for
    recon_weight = beta = 1).

    The Keras post writes it as ``xent_loss = original_dim * binary_crossentropy(x, x_decoded_mean)`` (the
    mean over pixels times 784, i.e. the sum) plus ``kl_loss = -0.5 * K.sum(1 + z_log_var - K.square(z_mean)
    - K.exp(z_log_var), axis=-1)``, averaged over the batch; the PyTorch post's ``loss_function`` is the same
    sum (``reduction='sum'``) over the whole batch. Here the cross-entropy comes from logits and is summed over
    however many pixels the images have, and the batch mean is the caller's (the models take it).

    Args:
      x: images in [0, 1], (batch, H, W, C).
      logits: the decoder's logits (or a gaussian_pixel / logistic_mixture decoder's parameters,
        ``tfvae.likelihoods``), (batch, H, W, output channels).
      z_mean, z_log_var: the posterior's parameters, (batch, latent); ``z_log_var=None`` is a plain
        autoencoder, whose loss is the reconstruction alone.
      reconstruction: one of RECONSTRUCTION_LOSSES (see ``reconstruction_loss``).
      beta: weight of the KL term.
      variance: the shared variance of a "gaussian" decoder; None: the batch's optimum (``optimal_variance``).
      recon_weight: weight of the reconstruction term; 0 leaves it out of ``loss`` altogether (it is still
        returned, unweighted, as ``reconstruction``), so no gradient of it reaches the decoder.
      kl: a per-example KL term (batch,) to use instead of the closed form against N(0, I), for a model whose
        prior is another density (``tfvae.models.vamp``: a Monte-Carlo estimate).

    Returns:
      dict of (batch,) float32 tensors: ``loss``, ``reconstruction`` (unweighted) and ``kl`` (unweighted; zeros
      without z_log_var).
    """
    recon = reconstruction_loss(x, logits, reconstruction, variance=variance)
    if kl is None:
        kl = ops.zeros_like(recon) if z_log_var is None else gaussian_kl(z_mean, z_log_var)
    kl = ops.cast(kl, "float32")
    # A weight of 0 drops the term rather than multiplying it by 0: 0 * inf (a diverged decoder) would be NaN.
    loss = (recon_weight * recon if recon_weight else ops.zeros_like(recon)) + (beta * kl if beta else 0.0)
    return {"loss": loss, "reconstruction": recon, "kl": kl}
