"""A run's fitted samplers, read from its run directory or fitted and written there: ``load_or_fit``.

The fitting is ``tfvae.samplers.densities``'; the files' format and checks are ``tfvae.samplers.npz``'s. A saved
sampler is used only while it was fitted to the run's present ``encoder.keras`` and with the settings asked for; a
setting not asked for is the sampler's default (``defaults``: a gmm asked for nothing has 10 components and is fitted
to at most GMM_MAX_CODES codes, whatever a fit before had; a run's gmm is asked for its model's size:
``tfvae.samplers.run_samplers``). A setting that a saved fit does not record (the fit predates
the setting) has the value of the sampler's ``missing_means``: diffusion's ``smoothing`` 0.

A cap on the codes a fit uses (a sampler's ``codes_cap``: the gmm's ``max_codes``) at or above the training codes
there are is no cap: every such cap fits all of them, the same fit. So a saved fit and an asked one differ in their
cap only where one of them took fewer codes than the run has, counted by the file's meta (``training_codes``; a file
written before the cap has ``codes`` alone, and was fitted to all of them): a gmm.npz of such a file is reused where
the run has at most GMM_MAX_CODES training codes, and fitted again, to a subset, where it has more.
"""

import time

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.samplers import densities, npz


def load_or_fit(workdir, name, latent_dim, train_codes, settings, log):
    """The fitted sampler ``name`` of the run in ``workdir``.

    Args:
      workdir: the run directory.
      name: a fitted sampler's name ("gmm", "two_stage").
      latent_dim: size of the run's codes.
      train_codes: a function giving the training codes to fit to (called only when a fit is needed).
      settings: passed to the fit, e.g. ``components=10``.
      log: gets one line when a sampler is fitted, and why.

    Raises:
      TfvaeError: a damaged sampler file (one line: delete it to refit).
    """
    kind = densities.CLASSES[name]
    settings = {**kind.defaults, **settings}
    path = npz.sampler_path(workdir, name)
    fingerprint = npz.encoder_fingerprint(workdir)
    saved = npz.load_sampler(workdir, name, latent_dim, kind.required)
    if saved is not None:
        arrays, meta = saved
        asked = _not_fitted_with(settings, meta, getattr(kind, "codes_cap", None), getattr(kind, "missing_means", {}))
        if meta.get("encoder_sha256") != fingerprint:
            log(f"{path} was fitted to another encoder.keras (the run has trained since): fitting it again")
        elif asked:
            log(f"{path} was fitted with other settings than {asked}: fitting it again")
        else:
            try:
                return densities.sampler_from_state(name, arrays, meta.get("settings"))
            except (ValueError, KeyError, IndexError) as e:  # arrays of the right names but not of one sampler
                raise TfvaeError(f"{path} holds arrays that are not one {name} sampler ({e}); delete it and it is "
                                 f"fitted again on its next use") from None
    codes = train_codes()
    started = time.perf_counter()
    fitted = densities.fit_sampler(name, codes, seed=0, **settings)
    seconds = time.perf_counter() - started
    cap = getattr(kind, "codes_cap", None)
    used = min(len(codes), settings[cap]) if cap else len(codes)  # the fit checked the cap
    meta = {"latent": latent_dim, "codes": used, "training_codes": len(codes), "encoder_sha256": fingerprint,
            "settings": {**fitted.settings(), **settings}, "seconds": round(seconds, 3)}
    try:
        npz.save_sampler(workdir, name, fitted.state(), meta)
        saved_to = f"wrote {path}"
    except TfvaeError as e:  # e.g. someone else's read-only run: sample anyway, and say why nothing was kept
        saved_to = f"not saved: {e}"
    subset = f"{used:,} of {len(codes):,} training codes (a random subset: {cap}={settings[cap]:,})" \
        if used < len(codes) else f"{len(codes):,} training codes"
    log(f"fitted the {name} sampler to {subset} in {seconds:.1f} s; {saved_to}")
    return fitted


def _not_fitted_with(settings, meta, cap, missing=None):
    """The asked ``settings`` that the saved fit (its ``meta``) was not fitted with; ``cap``: the setting that caps
    the codes a fit uses (None: none does), compared by the codes it leaves (see the module docstring);
    ``missing``: what a setting missing from a saved fit's meta was (the value of a fit saved before the setting
    existed; the sampler's ``missing_means``)."""
    saved = {**(missing or {}), **meta.get("settings", {})}
    available = meta.get("training_codes", meta.get("codes"))

    def uncapped(value):  # None: a fit of all the codes (a bad value stays itself: it differs, and its fit refuses it)
        whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        return None if value is None or (whole and isinstance(available, int) and value >= available) else value

    return {k: v for k, v in settings.items()
            if (uncapped(saved.get(k)) != uncapped(v) if k == cap else saved.get(k) != v)}
