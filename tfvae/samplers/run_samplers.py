"""A run's samplers by name (``tfvae.api.Run.samplers``): the name checked, its settings checked, and the sampler
made, read from the run directory or fitted there (``store.load_or_fit``), or the model's own learned prior; each
fitted one is kept for the Run's life.

The samplers of ``tfvae.samplers.densities`` draw vectors. A run whose codes are continuous grids (a gridvae's
(h, w, c)) has them fitted to its training codes flattened into vectors of h w c numbers (C order), and their draws
reshaped back into grids (``GridDraws``): the prior N(0, I) is the same density either way, a mixture's full
covariance sees every cell. The diffusion sampler (``takes_grids``) is given the grids themselves, for its U-Net
(or flattens them for its MLP). A vqvae's grids of codebook indices are drawn by its own PixelCNN only.
"""

import math
import numbers

from tfvae import models
from tfvae.errors import ArgumentError
from tfvae.models import models_with, with_article
from tfvae.samplers import densities, store

GMM_MOST_COMPONENTS = 500  # the largest mixture a model's default asks for (``default_components``)
# The most work of one EM iteration a default mixture asks for, n k d^2 (n codes, k components, d numbers a code):
# that of the default fits measured on Fashion-MNIST's 7x7x2 and the emoji's 16x16x3 grids (docs/sampling.md).
GMM_DEFAULT_WORK = 2e11


def default_components(model, num_codes, code_size):
    """The gmm sampler's number of components for model ``model`` when none is asked for: GMM_COMPONENTS (10,
    Ghosh et al. 2020's), or, for a model whose class sets ``codes_per_gmm_component`` (a gridvae, whose codes are
    grids of many numbers), one component per that many of the n codes it is fitted to, at most
    GMM_MOST_COMPONENTS and at most what keeps an EM iteration's O(n k d^2) work (``tfvae.samplers.densities``'
    docstring) within GMM_DEFAULT_WORK, and never fewer than GMM_COMPONENTS.

    Args:
      model: the run's model name.
      num_codes: a function giving n, called only for such a model.
      code_size: d, the numbers in one code.
    """
    per = models.model_class(model).codes_per_gmm_component
    if per is None:
        return densities.GMM_COMPONENTS
    n = max(1, num_codes())
    affordable = int(GMM_DEFAULT_WORK // (n * code_size ** 2))
    return max(densities.GMM_COMPONENTS, min(GMM_MOST_COMPONENTS, n // per, affordable))


class RunSamplers:
    """The samplers of one run.

    Args:
      workdir: the run directory (fitted samplers are read from and written to its samplers/; errors name it).
      model: the run's model name (``Config.model``): its default sampler, and errors name it.
      code_shape: the shape of one of its codes: (latent,), or a grid's (h, w, c) (``tfvae.code_grids``).
      quantized: whether its codes are a vqvae's grids, which only its learned prior draws.
      learned_prior: a function giving the model's learned prior, or None when it has none
        (``tfvae.api.Run.learned_prior``).
      train_codes: a function giving the training codes a sampler is fitted to (``tfvae.api.Run.train_codes``),
        called only when a fit is needed.
      num_train_codes: a function giving how many there are, without encoding them (a gmm's default size).
      log: gets one line when a sampler is fitted, and why.
    """

    def __init__(self, workdir, *, model, code_shape, quantized, learned_prior, train_codes, num_train_codes, log):
        self.workdir, self.model, self.quantized = workdir, model, quantized
        self.code_shape = tuple(int(d) for d in code_shape)
        self.latent_dim = math.prod(self.code_shape)  # the size of the vectors the samplers draw
        self.learned_prior, self.train_codes, self.log = learned_prior, train_codes, log
        self.num_train_codes = num_train_codes
        self._fitted = {}  # (name, settings) -> sampler

    @property
    def default(self):
        """The sampler used when none is named (``tfvae.samplers.default_sampler``)."""
        return densities.default_sampler(self.model)

    def get(self, name=None, **settings):
        """The sampler ``name`` (default ``default``) with these ``settings``: see ``tfvae.api.Run.sampler``.

        Raises:
          ArgumentError: an unknown name, "learned" for a model without a learned prior, another sampler for a
            vqvae, or a setting the sampler does not take. TfvaeError: a damaged sampler file.
        """
        name = name or self.default
        if name not in densities.SAMPLERS:
            raise ArgumentError("sampler", f"sampler={name!r} is not a sampler; choose one of "
                                           f"{', '.join(densities.SAMPLERS)}")
        if self.quantized and name != densities.LEARNED:
            raise ArgumentError("sampler", f"sampler={name} given, but {self.workdir} holds a vqvae: its codes are "
                                           "grids of codebook indices, drawn by its PixelCNN prior: use "
                                           "sampler=learned")
        settable = () if name == densities.LEARNED else densities.CLASSES[name].settable
        for setting, value in settings.items():
            if setting not in settable:
                raise ArgumentError(setting, f"{setting}={value!r} given, but sampler={name} takes "
                                             f"{', '.join(settable) or 'no settings'}")
        if name == densities.LEARNED:
            prior = self.learned_prior()
            if prior is None:
                unlearned = [n for n in densities.SAMPLERS if n != densities.LEARNED]
                having = " or ".join(models_with("has_learned_prior"))
                raise ArgumentError("sampler", f"sampler='learned', but {self.workdir} holds "
                                               f"{with_article(self.model)}, which has no learned prior (a {having} "
                                               f"has one); choose {', '.join(unlearned[:-1])} or {unlearned[-1]}")
            return prior
        kind = densities.CLASSES[name]
        if name == "gmm" and settings.get("components") is None:  # the model's default size, for the codes it uses
            settings["components"] = default_components(self.model, lambda: min(
                self.num_train_codes(), _whole(settings.get("max_codes"), densities.GMM_MAX_CODES)), self.latent_dim)
        if not kind.fitted:
            return self._shaped(kind(self.latent_dim))
        # A setting of the draws (the diffusion sampler's diffusion_steps) is no part of the fit: never a refit.
        draw = {k: settings.pop(k) for k in list(settings) if k in getattr(kind, "draw_settings", ())}
        key = (name, tuple(sorted(settings.items())))
        if key not in self._fitted:
            codes = self.train_codes if getattr(kind, "takes_grids", False) else self._flat_train_codes
            self._fitted[key] = store.load_or_fit(self.workdir, name, self.latent_dim, codes, settings, self.log)
        return self._shaped(self._fitted[key].with_draw_settings(**draw) if draw else self._fitted[key])

    def _flat_train_codes(self):
        codes = self.train_codes()
        return codes.reshape(len(codes), -1)

    def _shaped(self, sampler):
        return sampler if len(self.code_shape) == 1 else GridDraws(sampler, self.code_shape)


def _whole(value, default):
    """``value`` where it is a whole number above 0 (a bad one is refused by the fit, in its own words), else
    ``default``."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
    return value if whole else default


class GridDraws:
    """A sampler of flat vectors whose draws are reshaped into code grids: ``sample(n, ...)`` -> float32
    (n, *shape). Everything else is the sampler's (``sampler``)."""

    def __init__(self, sampler, shape):
        self.sampler, self.shape = sampler, tuple(shape)

    def sample(self, n, seed=0, temperature=1.0, **draw):
        return self.sampler.sample(n, seed, temperature, **draw).reshape((n, *self.shape))

    def __getattr__(self, name):  # only for names not found on GridDraws itself
        if name == "sampler":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.sampler, name)
