"""A Run's scores (``tfvae.api.Run`` inherits ``Scoring``): per-image anomaly scores, reconstructions with their
-log p(x | z_mean), and the -ELBO terms and IWAE NLL of a model that defines a likelihood.

Every forward pass goes through the Run's one ``tfvae.inference.Inference``; the likelihood of every decoder is
``tfvae.metrics``' one 8-bit path, and a model with a learned prior (a vamp) weighs its draws with that prior.
"""

from tfvae import metrics
from tfvae.errors import TfvaeError


class Scoring:
    """The scoring methods of a Run; they use its ``workdir``, ``config``, ``variational``, ``images``,
    ``condition``, ``batch_size``, ``inference``, ``encoder``, ``decoder``, ``likelihood``, ``variance`` and
    ``learned_prior``."""

    def score(self, images, labels=None, samples=8, seed=0):
        """Per-image anomaly score in nats (higher = less like the training data).

        The -ELBO (reconstruction over ``samples`` draws z ~ q(z|x), plus the closed-form KL; a vamp's KL is the
        mean of log q(z|x) - log p(z) over the same draws) for a VAE/CVAE/vamp;
        the reconstruction term -log p(x | z_mean) for a plain autoencoder. It is the score evaluate.py
        reports (``--mode=score``, OOD AUROC).

        Returns:
          float64 (n,).
        """
        x = self.images(images)
        return self.score_terms(x, self.condition(labels, len(x)), samples=samples, seed=seed)[0]["score"]

    def score_terms(self, x, cond=None, samples=8, seed=0, batch_size=None):
        """``score``'s terms for images already in [0, 1] and one-hot labels (evaluate.py calls this).

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
        return self.inference.reconstruct(self.encoder, self.decoder, x, cond, self.likelihood, variance, batch_size)

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
            kind = {"vqvae": "a vqvae, whose codes are discrete"}.get(
                self.config.model, f"an {self.config.model}, a deterministic autoencoder")
            raise TfvaeError(f"{self.workdir} holds {kind}, which defines no likelihood: only a vae, cvae or vamp "
                             "has one")
        return self.inference.likelihood_terms(
            self.encoder, decoder or self.decoder, x, num_samples, labels=cond, likelihood=self.likelihood,
            variance=self.variance or metrics.GAUSSIAN_VARIANCE, max_batch=max_batch, seed=seed, progress=progress,
            prior=self.learned_prior)
