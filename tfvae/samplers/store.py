"""A run's fitted samplers, read from its run directory or fitted and written there: ``load_or_fit``.

The fitting is ``tfvae.samplers.densities``'; the files' format and checks are ``tfvae.samplers.npz``'s. A saved
sampler is used only while it was fitted to the run's present ``encoder.keras`` and with the settings asked for; a
setting not asked for is the sampler's default (``defaults``: a gmm asked for nothing has 10 components, whatever a
fit before had).
"""

import time

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
        asked = {k: v for k, v in settings.items() if meta.get("settings", {}).get(k) != v}
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
    meta = {"latent": latent_dim, "codes": len(codes), "encoder_sha256": fingerprint,
            "settings": {**fitted.settings(), **settings}, "seconds": round(seconds, 3)}
    try:
        npz.save_sampler(workdir, name, fitted.state(), meta)
        saved_to = f"wrote {path}"
    except TfvaeError as e:  # e.g. someone else's read-only run: sample anyway, and say why nothing was kept
        saved_to = f"not saved: {e}"
    log(f"fitted the {name} sampler to {len(codes):,} training codes in {seconds:.1f} s; {saved_to}")
    return fitted
