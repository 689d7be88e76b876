r"""Loss terms of the (beta-)VAE, with explicit reductions.

For an image x with D pixels and a diagonal Gaussian posterior q(z|x) = N(mu, diag(exp(log_var))), the
negative ELBO is

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)),

estimated with one reparameterised sample z. With a Bernoulli decoder, -log p(x|z) is the binary
cross-entropy summed over the D pixels (the Keras example's "mean BCE x 28 * 28"), computed from logits
for numerical stability. The KL term has the closed form

    KL = -1/2 * sum_j (1 + log_var_j - mu_j^2 - exp(log_var_j)).

Every function here returns one value per example (summed over pixels or latent dimensions); the model
averages over the batch. beta weights the KL term (beta-VAE; beta = 1 is the ELBO).
"""

from keras import ops

RECONSTRUCTION_LOSSES = ("bce", "mse")


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


def reconstruction_loss(x, logits, kind="bce"):
    """Per-example reconstruction term: ``bernoulli_nll`` ("bce") or ``squared_error`` ("mse")."""
    if kind == "bce":
        return bernoulli_nll(x, logits)
    if kind == "mse":
        return squared_error(x, logits)
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


def vae_loss(x, logits, z_mean=None, z_log_var=None, *, reconstruction="bce", beta=1.0):
    """The documents' ``vae_loss``, per image: reconstruction + beta * KL (the negative ELBO for beta = 1).

    The Keras post writes it as ``xent_loss = original_dim * binary_crossentropy(x, x_decoded_mean)`` (the
    mean over pixels times 784, i.e. the sum) plus ``kl_loss = -0.5 * K.sum(1 + z_log_var - K.square(z_mean)
    - K.exp(z_log_var), axis=-1)``, averaged over the batch; the PyTorch post's ``loss_function`` is the same
    sum (``reduction='sum'``) over the whole batch. Here the cross-entropy comes from logits and is summed over
    however many pixels the images have, and the batch mean is the caller's (the models take it).

    Args:
      x: images in [0, 1], (batch, H, W, C).
      logits: the decoder's logits, same shape.
      z_mean, z_log_var: the posterior's parameters, (batch, latent); ``z_log_var=None`` is a plain
        autoencoder, whose loss is the reconstruction alone.
      reconstruction: "bce" or "mse" (see ``reconstruction_loss``).
      beta: weight of the KL term.

    Returns:
      dict of (batch,) float32 tensors: ``loss``, ``reconstruction`` and ``kl`` (zeros without z_log_var).
    """
    recon = reconstruction_loss(x, logits, reconstruction)
    kl = ops.zeros_like(recon) if z_log_var is None else gaussian_kl(z_mean, z_log_var)
    return {"loss": recon + beta * kl, "reconstruction": recon, "kl": kl}
