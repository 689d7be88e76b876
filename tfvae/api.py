"""A finished run, from Python: ``tfvae.load(workdir)`` and the methods sample.py and evaluate.py use too.

    import tfvae
    run = tfvae.load("runs/latest")
    x, y = run.test_data()                  # the run's test images as training saw them, and class ids
    z_mean, z_log_var = run.encode(x[:8])   # posterior means and log-variances (None for a plain autoencoder)
    images = run.decode(z_mean)             # the decoder's mean (sigmoid of its logits): float32 in [0, 1]
    new = run.sample(16, sampler="gmm")     # codes from a mixture fitted to the training codes (saved in samplers/)
    calm = run.sample(16, temperature=0.7)  # draws nearer the density's modes (1: the density itself)

Conventions of every method:

* Images in: numpy arrays (n, H, W, C), or (n, H, W) for one channel, either uint8 in 0..255 or float in
  [0, 1]; the run's own image size. They are used as given: a run trained on binarized images
  (``config.binarize``) expects binary ones. Images out: float32 (n, H, W, C) in [0, 1].
* Labels are integer class ids, one per image or one int for all. Only a cvae takes them, and it needs them
  wherever the encoder or decoder runs (``sample`` cycles through the classes when none is given).
* Latent codes z are float32 (n, latent). Work is done in batches of ``batch_size`` in inference mode, with
  z = z_mean wherever one code per image is needed.
* ``encoder.keras`` and ``decoder.keras`` are loaded (with ``safe_mode=True``, by ``tfvae.rundir``) the first
  time a method needs them: drawing prior samples never loads the encoder.
* Every forward pass goes through the Run's one ``tfvae.inference.Inference``: compiled, batched, and freed
  with the Run. sample.py's pictures, the Projector and every evaluation step use these same methods.
* Errors are ``TfvaeError``s naming the argument that was wrong (``labels given, but ...``), one line each;
  ``tfvae.errors.ArgumentError`` carries its name, so that a script can say its flag instead.

The Run is composed of parts, each made with what it needs, named in its arguments (no mixins): ``networks``
(encoder.keras and decoder.keras, loaded on first use: ``tfvae.rundir.ExportedModels``), ``inference``, ``data``
(its dataset and test set: ``tfvae.run_data.RunData``), ``code_grids`` (a vqvae's code grids and PixelCNN prior:
``tfvae.code_grids.CodeGrids``), ``scores`` (``tfvae.scores.Scores``), ``views`` (its latent space's:
``tfvae.latent_views.LatentViews``) and ``samplers`` (``tfvae.samplers.run_samplers.RunSamplers``). Its methods
above are thin calls into them.

The test set. ``test_data()`` is what evaluation scores: the test images as the model sees them
(``tfvae.run_data``'s docstring says how a binarized run's are drawn); ``test_data(grey=True)`` the grey levels.
"""

import os

import numpy as np

from tfvae import arguments, models, picture_arrays, rundir
from tfvae.code_grids import CodeGrids
from tfvae.inference import BATCH_SIZE, Inference
from tfvae.latent_views import LatentViews
from tfvae.run_data import RunData
from tfvae.samplers.run_samplers import RunSamplers
from tfvae.scores import Scores


def load(workdir="runs/latest", batch_size=BATCH_SIZE, log=None):
    """The run in ``workdir`` (a run directory, or the ``latest`` file that names one).

    This is where every script and library function resolves a workdir argument (``tfvae.rundir``).

    Args:
      workdir: the run directory, or a ``latest`` file naming one.
      batch_size: most images or codes per forward pass.
      log: where a line about a damaged but usable run directory goes (see ``Run.epochs_trained``).

    Raises:
      TfvaeError: no run there, or a damaged one (one line saying what to do).
    """
    workdir = rundir.resolve_workdir(workdir)
    return Run(workdir, rundir.load_config(workdir), batch_size=batch_size, log=log)


class Run:
    """A trained run: its config, its models, and numpy in / numpy out access to them, through its parts.

    Attributes:
      workdir: the run directory.
      config: its ``tfvae.config.Config`` (what its flags said and what its data turned out to be).
      batch_size: most images or codes per forward pass.
      log: where the Run's lines go (a sampler fitted, a data fallback, a damaged state.json); default print.
      networks: its encoder.keras and decoder.keras, loaded on first use (``tfvae.rundir.ExportedModels``).
      inference: the compiled forward passes of its models (``tfvae.inference.Inference``).
      data: its dataset and its images as the model sees them (``tfvae.run_data.RunData``).
      code_grids: its codes' shape; a vqvae's code grids, indices and PixelCNN prior (``tfvae.code_grids``).
      scores: reconstructions, anomaly scores, -ELBO terms and the IWAE NLL (``tfvae.scores.Scores``).
      views: each latent dimension's use, traversals (``tfvae.latent_views.LatentViews``).
      samplers: its samplers by name (``tfvae.samplers.run_samplers.RunSamplers``).
    """

    def __init__(self, workdir, config, encoder=None, decoder=None, batch_size=BATCH_SIZE, log=None):
        self.workdir, self.config, self.batch_size, self.log = workdir, config, batch_size, log
        self._epochs_trained = self._learned_prior = self._train_codes = self._test_codes = None
        log = log or print
        self.networks = rundir.ExportedModels(workdir, config, self.variational, encoder, decoder)
        self.inference = Inference(batch_size)
        self.data = RunData(config, log)
        self.code_grids = CodeGrids(workdir, config, self.inference, self.networks)
        self.scores = Scores(self.networks, self.inference, workdir=workdir, model=config.model,
                             variational=self.variational, loss=config.loss, batch_size=batch_size,
                             learned_prior=lambda: self.learned_prior)
        self.views = LatentViews(self.test_codes, self.test_data, self.encode, self.decode,
                                 self.code_grids.vector_latent, conditional=self.conditional,
                                 has_learned_prior=self.model_class.has_learned_prior, latent_dim=self.latent_dim,
                                 image_shape=self.image_shape)
        self.samplers = RunSamplers(workdir, model=config.model, code_shape=self.code_grids.code_shape,
                                    quantized=self.code_grids.quantized, learned_prior=lambda: self.learned_prior,
                                    train_codes=self.train_codes,
                                    num_train_codes=lambda: len(self.dataset.x_train), log=log)

    # -- what the run is -------------------------------------------------------------------------------

    @property
    def name(self):
        """The run directory's name (``latest`` resolved)."""
        return os.path.basename(os.path.normpath(os.path.realpath(self.workdir)))

    @property
    def latent_dim(self):
        """Size of z."""
        return int(self.config.latent)

    @property
    def image_shape(self):
        """(height, width, channels) of the run's images."""
        return tuple(int(d) for d in self.config.image_shape)

    @property
    def conditional(self):
        """Whether the run is a cvae (its encoder and decoder take one-hot labels)."""
        return self.model_class.conditional

    @property
    def variational(self):
        """Whether the encoder is a posterior q(z|x) with a variance (vae, cvae, vamp), not a deterministic
        autoencoder's (ae, rae, wae) or a vqvae's."""
        return self.model_class.variational

    @property
    def model_class(self):
        """The class of the run's model (``tfvae.models.model_class``): its hooks, such as ``learned_prior``."""
        return models.model_class(self.config.model)

    @property
    def num_classes(self):
        """Classes of the run's data (0 when unlabelled)."""
        return int(self.config.num_classes)

    @property
    def class_names(self):
        """Names of the classes, or their ids as strings when the data has none."""
        return list(self.config.class_names) or [str(i) for i in range(self.num_classes)]

    @property
    def epochs_trained(self):
        """Epochs in the run's last checkpoint (0 when it has none).

        When state.json is damaged they come from history.csv's last row, and the Run's ``log`` gets one line
        saying so (once: the value is read once per Run).
        """
        if self._epochs_trained is None:
            self._epochs_trained = rundir.epochs_trained(self.workdir, self.log)
        return self._epochs_trained

    @property
    def learned_prior(self):
        """The model's own learned prior (a vamp's VampPrior: ``log_prob`` and ``sample``; a vqvae's PixelCNN,
        ``tfvae.models.pixelcnn.CodeGridPrior``: ``sample`` of code grids), made once by the model's
        ``learned_prior`` hook from the run's encoder, its one forward path and (a vqvae's) PixelCNN draws; None
        for a model whose prior is N(0, I) or that has none."""
        if self._learned_prior is None and self.model_class.has_learned_prior:
            encoder = self.networks.encoder
            self._learned_prior = self.model_class.learned_prior(
                encoder, lambda images: self.inference.encode(encoder, images),
                sample_indices=self.code_grids.sample_indices)
        return self._learned_prior

    @property
    def encoder(self):
        """The Keras encoder: images in [0, 1] (+ one-hot labels) -> {"z_mean", "z_log_var", "z"}."""
        return self.networks.encoder

    @property
    def decoder(self):
        """The Keras decoder: z (+ one-hot labels) -> logits."""
        return self.networks.decoder

    @property
    def likelihood(self):
        """The decoder likelihood the training loss implies (``tfvae.metrics.likelihood_for_loss``)."""
        return self.scores.likelihood

    @property
    def variance(self):
        """The Gaussian decoder's shared variance (``tfvae.scores.Scores.variance``); None for bce and others."""
        return self.scores.variance

    # -- inputs ----------------------------------------------------------------------------------------

    def images(self, images):
        """``images`` as float32 (n, H, W, C) in [0, 1] (``tfvae.arguments.images``)."""
        return arguments.images(images, self.image_shape)

    def one_hot(self, labels):
        """One-hot rows of class ids for a cvae; None for other models (no checks: see ``condition``)."""
        return picture_arrays.one_hot(labels, self.num_classes) if self.conditional else None

    def condition(self, labels, count):
        """The networks' label input for ``count`` items: one-hot (count, K) for a cvae, else None.

        Raises:
          ArgumentError: labels for a run that takes none, none for a cvae, or ids that are not its classes.
        """
        return arguments.condition(labels, count, self.num_classes if self.conditional else None,
                                   f"{self.workdir} holds a {self.config.model}")

    def codes(self, z):
        """``z`` as float32 (n, latent), or a vqvae's (n, h, w, D) grids; ArgumentError for another shape."""
        return arguments.codes(z, self.code_grids.code_shape)

    # -- the models, numpy in and out ------------------------------------------------------------------

    def encode(self, images, labels=None, batch_size=None):
        """Posterior means and log-variances of ``images``.

        Args:
          images: the run's images (see the module docstring).
          labels: class ids, for a cvae.
          batch_size: images per forward pass (default ``self.batch_size``).

        Returns:
          (z_mean, z_log_var), float32 (n, latent) each; z_log_var is None for a plain autoencoder.
        """
        x = self.images(images)
        return self.inference.encode(self.encoder, x, self.condition(labels, len(x)), batch_size)

    def decode(self, z, labels=None, batch_size=None):
        """Images (float32 in [0, 1]) that the decoder makes from codes ``z``: its distribution's mean (the
        sigmoid of its logits for bce, mse and gaussian; ``tfvae.likelihoods.mean``)."""
        z = self.codes(z)
        return self.inference.decode(self.decoder, z, self.condition(labels, len(z)), batch_size, self.likelihood)

    def reconstruct(self, images, labels=None):
        """The decoded posterior means of ``images``."""
        z_mean, _ = self.encode(images, labels)
        return self.decode(z_mean, labels)

    def interpolate(self, a, b, steps=10, label=None):
        """``steps`` images along the straight line from image ``a``'s code to image ``b``'s (both included).

        Args:
          a, b: one image each, (H, W, C) or (H, W).
          steps: images on the line.
          label: a cvae's class, kept along the line.
        """
        ends = np.stack([np.asarray(a), np.asarray(b)])
        z_mean, _ = self.encode(ends, None if label is None else [label, label])
        z = picture_arrays.interpolate(z_mean[0], z_mean[1], steps)
        return self.decode(z, None if label is None else label)

    def score(self, images, labels=None, samples=8, seed=0):
        """Per-image anomaly score in nats (higher = less like the training data): float64 (n,).

        The -ELBO (reconstruction over ``samples`` draws z ~ q(z|x), plus the closed-form KL; a vamp's KL is the
        mean of log q(z|x) - log p(z) over the same draws) for a VAE/CVAE/vamp; the reconstruction term
        -log p(x | z_mean) for a plain autoencoder. It is the score evaluate.py reports (``--mode=score``, OOD
        AUROC); its terms are ``scores.score_terms``'.
        """
        x = self.images(images)
        return self.scores.score_terms(x, self.condition(labels, len(x)), samples=samples, seed=seed)[0]["score"]

    # -- sampling --------------------------------------------------------------------------------------

    def sample(self, n, label=None, seed=0, sampler=None, temperature=1.0, **settings):
        """``n`` images decoded from codes drawn by ``sampler`` (a cvae draws class ``label``, or cycles through
        the classes).

        Args:
          n: how many.
          label: a cvae's class (default: the classes in turn, 0, 1, ..., K - 1, 0, ...).
          seed: seed of the draws.
          sampler: "prior" (z ~ N(0, I)), "gmm", "two_stage" or "diffusion" (densities fitted to the training
            codes; see ``sampler``) or "learned" (the model's own prior: a vamp's VampPrior, a vqvae's PixelCNN
            prior over code grids); default ``default_sampler``: learned for a vamp or vqvae, the prior for a vae,
            cvae or wae, gmm for an ae or rae.
          temperature: the draws' spread relative to the sampler's density (``tfvae.samplers``: tau scales the
            Gaussian noise of prior, gmm, two_stage and a VampPrior, a diffusion sampler's initial noise, and
            divides a PixelCNN's logits); 1 is the
            density itself; below 1 draws nearer its modes, more alike.
          settings: the fitted sampler's, e.g. ``components=50`` for gmm, ``diffusion_steps=20`` or ``solver="ddim"``
            for diffusion
            (see ``sampler``).

        Raises:
          ArgumentError: an unknown sampler or setting (``sampler``), or a temperature that is not above 0.
        """
        picture_arrays.check_temperature(temperature)  # before anything is read or fitted
        self.decoder  # noqa: B018  (a damaged decoder.keras fails before a sampler is fitted)
        z = self.sampler(sampler, **settings).sample(n, seed, temperature)
        if self.conditional and label is None:
            label = np.arange(n) % self.num_classes
        return self.decode(z, label)

    @property
    def default_sampler(self):
        """The sampler used when none is named: "learned" for a model with a learned prior (a vamp, a vqvae),
        "prior" for a vae, cvae or wae, "gmm" for an ae or rae."""
        return self.samplers.default

    def sampler(self, name=None, **settings):
        """The sampler ``name`` of this run, fitted to its training codes (``tfvae.samplers``).

        A fitted sampler (gmm, two_stage, diffusion) is read from ``<workdir>/samplers/<name>.npz`` when it is
        there, was fitted to the run's present encoder.keras and with these ``settings``; else it is fitted now
        (seed 0), saved there (a run directory that can't be written keeps none: the line says so), and the
        Run's ``log`` (default print) gets one line saying so. "learned" is the model's own prior
        (``learned_prior``), read from its files and never fitted.

        Args:
          name: one of ``tfvae.samplers.SAMPLERS``; default ``default_sampler``.
          settings: passed to the fit, e.g. ``components=10`` for gmm (its default; a gridvae's is one per 40
            codes, up to 500 within a fit's work: ``tfvae.samplers.run_samplers.default_components``) and
            ``max_codes=20000`` (its default: the most training codes it is fitted to, a random subset of a run with
            more, drawn with the fit's seed), ``steps`` for two_stage; one the sampler does not take is refused. A
            setting of the draws (the diffusion sampler's ``diffusion_steps`` and ``solver``) is not the fit's: it
            changes the draws, never makes a saved fit be fitted again.

        Returns:
          an object whose ``sample(n, seed, temperature=1.0)`` gives float32 (n, latent) codes (a vqvae's: code
          grids).

        Raises:
          ArgumentError: an unknown name, "learned" for a model without a learned prior, or a setting the
            sampler does not take. TfvaeError: a damaged sampler file (one line: delete it to refit).
        """
        return self.samplers.get(name, **settings)

    def train_codes(self):
        """Posterior means (float32 (n, latent)) of the run's training images as the model sees them (a cvae's
        with their labels): what the fitted samplers are fitted to."""
        if self._train_codes is None:
            x, y = self.data.train_data()
            self._train_codes = self.encode(x, y if self.conditional else None)[0]
        return self._train_codes

    # -- the run's data and latent space ---------------------------------------------------------------

    @property
    def dataset(self):
        """The run's dataset as its config names it, in grey levels whatever its binarization (uint8)."""
        return self.data.dataset

    def test_data(self, grey=False):
        """The run's test images and their class ids (or None): the test set evaluation scores
        (``tfvae.run_data.RunData.test_data``; ``grey``: the grey levels, whatever the run's binarization)."""
        return self.data.test_data(grey)

    def set_test_data(self, images, labels):
        """Uses these test images (as the model sees them) and class ids instead of loading them."""
        self.data.set_test_data(images, labels)
        self._test_codes = None

    def test_codes(self, limit=None):
        """(z_mean, z_log_var or None, labels or None) of the first ``limit`` test images (all by default)."""
        self.code_grids.vector_latent("scatter")
        if self._test_codes is None:
            x, y = self.test_data()
            self._test_codes = self.encode(x, y if self.conditional else None) + (y,)
        z_mean, z_log_var, y = self._test_codes
        return (z_mean[:limit], None if z_log_var is None else z_log_var[:limit], None if y is None else y[:limit])

    def latent_usage(self):
        """How much each latent dimension is used (``tfvae.latent_views.LatentViews.latent_usage``)."""
        return self.views.latent_usage()

    def traverse(self, n=9, index=None, seed=0, usage=None):
        """Latent traversals, one row per dimension (``tfvae.latent_views.LatentViews.traverse``)."""
        return self.views.traverse(n, index, seed, usage)

    # -- a vqvae's code grids --------------------------------------------------------------------------

    def code_indices(self, images):
        """A vqvae's codebook indices of ``images``: int32 (n, h, w) (``tfvae.code_grids``)."""
        return self.code_grids.code_indices(images)

    def prior_nll(self, images):
        """-log p(k) in nats (float64 (n,)) of ``images``' index grids k under a vqvae's PixelCNN prior."""
        return self.code_grids.prior_nll(images)
