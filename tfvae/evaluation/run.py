"""Loading a run for evaluation: ``tfvae.api.Run``, its models, data and epochs read up front."""

from tfvae import api


def load_run(workdir, log=print):
    """The run in ``workdir`` (a run directory, or the ``latest`` file naming one), ready to evaluate.

    Through ``tfvae.api.load``, which resolves ``workdir``. Only config.json, encoder.keras and decoder.keras must
    be good; they are loaded here, before any data, and then the run's dataset (``Run.dataset``). The epochs
    trained come from checkpoints/state.json, or if it is damaged from history.csv (``log`` gets one line
    saying so).

    Raises:
      TfvaeError: no complete run there.
    """
    return prepare(api.load(workdir, log=log))


def prepare(run):
    """Loads what every evaluation step needs of ``run`` now, so that a damaged run fails before any long step."""
    run.encoder, run.decoder  # noqa: B018  (the models first: a damaged file fails before the data is loaded)
    run.dataset  # noqa: B018
    run.epochs_trained  # noqa: B018  (says so once when state.json is damaged)
    run.variance  # noqa: B018  (a gaussian run without its trained variance fails here, before any long step)
    return run
