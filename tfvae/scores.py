"""A Run's scores (``tfvae.api.Run.scores``): reconstructions with their -log p(x | z_mean), the anomaly score's
terms, and the -ELBO terms and IWAE NLL of a model that defines a likelihood.

Every forward pass goes through the Run's one ``tfvae.inference.Inference``; the likelihood of every decoder is
``tfvae.metrics``' one 8-bit path, and a model with a learned prior (a vamp) weighs its draws with that prior.
The images and labels are the networks' inputs already (images in [0, 1], one-hot labels): ``tfvae.api.Run.score``
checks the user's.
"""

from tfvae import metrics, models
from tfvae.errors import TfvaeError


class Scores:
    """A run's scores of images.

    Args:
      networks: gives the run's Keras ``encoder`` and ``decoder`` (``tfvae.rundir.ExportedModels``: loaded on
        first use).
      inference: the Run's one forward path (``tfvae.inference.Inference``).
      workdir: the run directory (errors name it).
      model: the run's model name (``Config.model``; errors name it).
      variational: whether its encoder is a posterior with a variance, which defines a likelihood.
      loss: its reconstruction loss (``Config.loss``), which implies the decoder's likelihood.
      batch_size: most images per forward pass.
      learned_prior: a function giving the model's learned prior (``tfvae.api.Run.learned_prior``), or None for
        one whose prior is N(0, I); called when a likelihood is computed.
    """

    def __init__(self, networks, inference, *, workdir, model, variational, loss, batch_size, learned_prior):
        self.networks, self.inference = networks, inference
        self.workdir, self.model, self.variational, self.loss = workdir, model, variational, loss
        self.batch_size, self.learned_prior = batch_size, learned_prior

    @property
    def likelihood(self):
        """The decoder likelihood the training loss implies (``tfvae.metrics.likelihood_for_loss``)."""
        return metrics.likelihood_for_loss(self.loss)

    @property
    def variance(self):
        """The Gaussian decoder's shared variance: the one a ``loss=gaussian`` run was trained with (kept in its
        decoder's ``DecoderVariance`` layer), 1/2 for ``loss=mse``; None for the other losses."""
        try:
            return metrics.decoder_variance(self.networks.decoder, self.loss)
        except ValueError as e:
            raise TfvaeError(f"{self.workdir}: {e}") from None

    def score_terms(self, x, cond=None, samples=8, seed=0, batch_size=None):
        """``tfvae.api.Run.score``'s terms for images already in [0, 1] and one-hot labels (evaluate.py calls this):
        per image, the -ELBO (reconstruction over ``samples`` draws z ~ q(z|x), plus the KL) for a VAE/CVAE/vamp,
        the reconstruction term -log p(x | z_mean) for a plain autoencoder.

        Returns:
          (dict of float64 (n,) arrays: ``score``, ``reconstruction_at_mean`` and for a VAE ``neg_elbo``,
          ``reconstruction``, ``kl`` and ``nll`` (``samples`` importance samples); the reconstructions (decoded
          means) as float32 images).
        """
        batch_size = batch_size or self.batch_size
        recon, recon_nll = self.reconstruction(x, cond, batch_size)
        terms = {"reconstruction_at_mean": recon_nll}
        if self.variational:
            terms.update(self.likelihood_terms(x, cond, samples, max_batch=batch_size, seed=seed))
            terms["score"] = terms["neg_elbo"]
        else:
            terms["score"] = recon_nll
        return terms, recon

    def reconstruction(self, x, cond=None, batch_size=None):
        """Decoded posterior means of images already in [0, 1] (one-hot ``cond`` for a cvae).

        Returns:
          (reconstructions float32 in [0, 1], -log p(x | z_mean) per image in nats, float64).
        """
        variance = self.variance or metrics.GAUSSIAN_VARIANCE  # the Gaussian decoder's (unused by bce)
        return self.inference.reconstruct(self.networks.encoder, self.networks.decoder, x, cond, self.likelihood,
                                          variance, batch_size)

    def likelihood_terms(self, x, cond=None, num_samples=8, max_batch=1024, seed=0, decoder=None, progress=None):
        """Per-image -ELBO terms and the IWAE NLL of images in [0, 1] (``Inference.likelihood_terms``).

        Args:
          x: images already in [0, 1]; cond: one-hot labels for a cvae.
          num_samples: importance samples per image.
          max_batch: most codes decoded per call.
          seed: seed of the draws.
          decoder: another copy of the run's decoder to compute with (e.g. in bfloat16); default the run's.
          progress: optional callable(done_images, total_images).

        Raises:
          TfvaeError: the run is a plain autoencoder, which defines no likelihood.
        """
        if not self.variational:
            kind = "whose codes are discrete" if models.model_class(self.model).quantized else \
                "a deterministic autoencoder"
            having = models.models_with("variational")
            raise TfvaeError(f"{self.workdir} holds {models.with_article(self.model)}, {kind}, which defines no "
                             f"likelihood: only {', '.join(having[:-1])} or {having[-1]} has one")
        return self.inference.likelihood_terms(
            self.networks.encoder, decoder or self.networks.decoder, x, num_samples, labels=cond,
            likelihood=self.likelihood, variance=self.variance or metrics.GAUSSIAN_VARIANCE, max_batch=max_batch,
            seed=seed, progress=progress, prior=self.learned_prior())
