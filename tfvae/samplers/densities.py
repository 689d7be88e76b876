r"""Samplers of latent codes: the prior, and densities fitted to the training codes after training.

A trained autoencoder decodes any z, but it only learned to decode the codes its encoder gives. Sampling
means drawing z from some density p(z) and decoding it; the samplers differ in that density. Each has one
small interface: ``fit(codes, seed)`` (a classmethod), ``sample(n, seed, temperature=1.0)`` -> float32 (n, d), and
``state()`` / ``from_state(arrays, settings)``, the arrays and settings that ``tfvae.samplers.npz`` saves as
``samplers/<name>.npz`` and reads back (``tfvae.api.Run.sampler`` fits, saves and reloads them).

The codes. Every fitted sampler is fitted to the same codes: the posterior means z_i = mu(x_i) of the run's
training images as the model sees them (``Run.train_codes``; a cvae's encoder takes each image's label). For
a plain autoencoder mu(x) is its code. A gridvae's codes are (h, w, c) grids: its samplers are fitted to them
flattened into vectors and their draws reshaped back (``tfvae.samplers.run_samplers``).

``prior``: p(z) = N(0, I); nothing is fitted. It is the density a VAE's KL term pulls the aggregate posterior
q(z) = (1/n) sum_i q(z | x_i) towards, so it is a VAE's (and a cvae's) default, and the one a WAE's MMD term pulls
its codes towards, so a wae's too (``tfvae.models.regularized``). A plain autoencoder has no prior:
N(0, I) is the documents' "random vector into the decoder", usually far from where its codes lie.

``learned``: the model's own learned prior, read from the trained model and never fitted to the codes
(``tfvae.models.Autoencoder.learned_prior``, the hook a model class overrides; nothing is saved in samplers/,
since its state is the model's own, in encoder.keras and checked with it). For a ``vamp`` run it is the VampPrior,
p(z) = (1/K) sum_k N(z; m_k, diag s_k^2), the posteriors of its K pseudo-inputs: a uniform component, then a
Gaussian draw (``tfvae.models.VampPrior``). For a ``vqvae`` it is its PixelCNN over grids of codebook indices
(prior.keras, trained by train.py after the VQ-VAE), whose draws become code grids (n, h, w, D) through the
codebook (``tfvae.models.pixelcnn.CodeGridPrior``); it is a vqvae's only sampler. It is the default of a model
that has one; a model without one (ae, vae, cvae: their prior is N(0, I), or none) refuses it in one line naming
the argument.

``gmm`` (Ghosh et al. 2020, "From variational to deterministic autoencoders", ex-post density estimation):
p(z) = sum_k w_k N(z; m_k, S_k), a full-covariance mixture of ``components`` (10; a gridvae's default is larger:
``tfvae.samplers.run_samplers.default_components``) Gaussians fitted to the
codes by EM (``tfvae.metrics.fit_gaussian_mixture``: scikit-learn, k-means initialisation), to at most
``max_codes`` (GMM_MAX_CODES) of them: a run with more is fitted to a random subset of that many, drawn without
replacement by ``numpy.random.default_rng(seed)`` from the fit's seed (``capped_codes``), so the same seed fits the
same subset. Why a cap, and why 20,000: an EM iteration costs O(n k d^2) for n codes (each code's Mahalanobis
distance to each of the k components, and the k weighted covariances), plus O(k d^3) for the k Cholesky factors of
the d x d covariances, so the time of a fit grows with n while what it estimates does not: k (d + d (d + 1) / 2)
numbers (and k - 1 weights). Each component's covariance is the sample covariance of the m ~ n / k codes it
owns, whose eigenvalues are spread by factors between (1 - sqrt(d / m))^2 and (1 + sqrt(d / m))^2 around the true
ones (Marchenko & Pastur 1967); 20,000 codes give each of the default 10 components m ~ 2,000, keeping d / m <= 0.1
for codes of up to 200 numbers (a 7x7x4 grid's 196), where all of a 60,000-image training set would buy
d / m ~ 0.03 at three times the cost. A mixture of more components, or of longer codes, wants a larger cap (about
10 d codes a component); a cap at or above the number of codes is no cap (the fit uses them all, in their order).
Sampling draws
the component counts from Multinomial(n, w), then each component's draws, exactly as scikit-learn's
``GaussianMixture.sample`` with ``random_state=seed`` does (so a saved mixture gives the draws the fitted
estimator gives), shuffled by a generator seeded with ``seed``. A plain autoencoder's default: it has no
prior, and its codes are wherever the encoder put them; and a regularized autoencoder's (rae), which the paper
made to be sampled this way.

``two_stage`` (Dai & Wipf 2019, "Diagnosing and enhancing VAE models"): a second, small VAE fitted to the codes.
The codes are first standardised, c = (z - shift) / scale per dimension (shift, scale: their mean and
standard deviation), an affine map kept with the sampler. The second VAE has its own latent u of the same size
d, prior p(u) = N(0, I), an MLP encoder q(u | c) = N(mu(c), diag sigma^2(c)) and an MLP decoder with a
learned scalar variance gamma: p(c | u) = N(c; g(u), gamma I). It maximises the ELBO of the codes,

    log p(c) >= E_q [ -|c - g(u)|^2 / (2 gamma) - (d / 2) log(2 pi gamma) ] - KL(q(u | c) || N(0, I)),

with u = mu(c) + sigma(c) * eps (one draw per code per step) and gamma = exp(log_gamma) learned with the
weights. Dai & Wipf show that with gamma learned, gamma -> 0 where the codes lie on a lower-dimensional set
and the second VAE's aggregate posterior q(u) approaches N(0, I) where the first VAE's q(z) did not; so
u ~ N(0, I) -> g(u) -> z = shift + scale * g(u) lands where the training codes are. A sample is a draw of
the second VAE's generative model, c = g(u) + sqrt(gamma) e with u, e ~ N(0, I), mapped back to
z = shift + scale * c and decoded by the run's own decoder. Dai & Wipf take the mean g(u): the two agree when
gamma -> 0; where it does not (codes that are Gaussian already, for which the second VAE's posterior collapses
and gamma stays near 1) the mean alone would be one point. Both networks are
``hidden`` wide (max(64, 4 d)) with two ReLU layers; Adam with a cosine-decayed learning rate, batches of
256, ``steps`` updates (by default 80 passes over the codes, between 2,000 and 20,000 updates; the time a
fit takes is in docs/sampling.md#samplers-where-the-codes-come-from). Dai & Wipf fit the second stage to draws
z ~ q(z | x); here it is fitted to the posterior means, as the mixture is, which also serves a plain autoencoder.

``diffusion`` (Ho et al. 2020; drawn by DPM-Solver++(2M), Lu et al. 2022, or DDIM, Song et al. 2021; the latent
MLP of DiffAE, Preechakul et al. 2022, or a small U-Net over grid codes): a denoising diffusion model over the same
standardised codes, its own module (``tfvae.samplers.diffusion``, where its maths is), registered here. Besides
its fit's settings it takes two settings of the draws, ``diffusion_steps`` and ``solver`` (``draw_settings``),
which never make a saved fit be fitted again.

Temperature. Every sampler's ``sample(n, seed, temperature=1.0)`` draws from its density with the spread of its
Gaussian noise multiplied by ``temperature`` (tau), the knob of Glow (Kingma & Dhariwal 2018) and NVAE (Vahdat &
Kautz 2020): ``prior`` z = tau * e; ``gmm`` z = m_k + tau * (x - m_k) with x ~ N(m_k, S_k), a draw from
N(m_k, tau^2 S_k), the components and their weights unchanged; ``two_stage`` u and e both scaled by tau;
``diffusion`` its initial noise c_1 = tau * e, the only noise of its deterministic ODE path; a
VampPrior's components likewise. A vqvae's PixelCNN has no Gaussian noise: its softmax is taken of logits / tau,
the temperature of a categorical. tau < 1 trades diversity for draws nearer the densest codes (for a mixture:
nearer its components' means); tau = 1 is the density itself, and gives the same draws as before the knob
existed, bit for bit.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import metrics, models, picture_arrays
from tfvae.errors import ArgumentError
from tfvae.samplers.diffusion import DiffusionSampler

SAMPLERS = ("prior", "gmm", "two_stage", "diffusion", "learned")
LEARNED = "learned"
GMM_COMPONENTS = 10
GMM_MAX_CODES = 20_000  # the most codes a gmm is fitted to (the module docstring says why)


def default_sampler(model):
    """The sampler model ``model`` is sampled with when none is named: its class's ``default_sampler`` ("learned"
    for a model with its own prior, "prior" for one that pulls its codes towards N(0, I), "gmm" for a deterministic
    autoencoder made to be sampled ex post)."""
    return models.model_class(model).default_sampler


class Prior:
    """z ~ N(0, I): nothing fitted, nothing saved."""

    name = "prior"
    fitted = False
    required = ()
    settable = ()
    defaults = {}

    def __init__(self, latent):
        self.latent = int(latent)

    def sample(self, n, seed=0, temperature=1.0):
        """``n`` draws from N(0, temperature^2 I), float32 (n, d), reproducible from ``seed``
        (``picture_arrays.prior_samples``)."""
        temperature = picture_arrays.check_temperature(temperature)
        return picture_arrays.prior_samples(n, self.latent, seed) * np.float32(temperature)


def capped_codes(codes, max_codes, seed=0):
    """``codes`` when there are at most ``max_codes`` of them, else a random ``max_codes`` of them: rows drawn
    without replacement by ``numpy.random.default_rng(seed).choice``, in the order drawn (the same seed, the same
    subset)."""
    if len(codes) <= max_codes:
        return codes
    return codes[np.random.default_rng(seed).choice(len(codes), max_codes, replace=False)]


class GaussianMixtureSampler:
    """The ex-post Gaussian mixture: weights (m,), means (m, d), covariances (m, d, d)."""

    name = "gmm"
    fitted = True
    required = ("weights", "means", "covariances")
    settable = ("components", "max_codes")  # fit's keyword arguments
    # The settings a fit that was asked for none of them uses: a saved mixture of another size, or fitted to other
    # codes, is fitted again.
    defaults = {"components": GMM_COMPONENTS, "max_codes": GMM_MAX_CODES}
    # The setting that caps the codes a fit uses: one at or above the codes there are is no cap
    # (``tfvae.samplers.store`` reuses a saved fit of all of them).
    codes_cap = "max_codes"

    def __init__(self, weights, means, covariances):
        self.weights = np.asarray(weights, "float64")
        self.means = np.asarray(means, "float64")
        self.covariances = np.asarray(covariances, "float64")
        self.latent = self.means.shape[1]

    @classmethod
    def fit(cls, codes, seed=0, components=GMM_COMPONENTS, max_codes=GMM_MAX_CODES):
        """Fits ``components`` full-covariance Gaussians by EM (``metrics.fit_gaussian_mixture``) to ``codes``, or
        to a random ``max_codes`` of them where there are more (``capped_codes``; the module docstring says why).

        Args:
          codes: the training codes, (n, d).
          seed: seed of the subset and of EM's k-means initialisation.
          components: the mixture's number of Gaussians.
          max_codes: the most codes the mixture is fitted to.

        Raises:
          ArgumentError: ``max_codes`` is not a whole number at least ``components``, or ``components`` is not a
            whole number between 1 and the number of codes.
        """
        if isinstance(max_codes, bool) or not isinstance(max_codes, (int, np.integer)) or max_codes < 1:
            raise ArgumentError("max_codes", f"max_codes={max_codes!r}: the gmm is fitted to at most this many "
                                             "training codes, a whole number above 0")
        if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or \
                not 1 <= components <= len(codes):
            raise ArgumentError("components", f"components={components!r}: a mixture of 1 to {len(codes):,} "
                                              f"Gaussians can be fitted to {len(codes):,} training codes")
        if max_codes < components:
            raise ArgumentError("max_codes", f"max_codes={max_codes!r}: fewer codes than the mixture's {components} "
                                             f"components; give it at least {components}")
        gmm = metrics.fit_gaussian_mixture(capped_codes(codes, max_codes, seed), components, seed=seed)
        return cls(gmm.weights, gmm.means, gmm.covariances)

    def settings(self):
        return {"components": int(len(self.weights))}

    def state(self):
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    @classmethod
    def from_state(cls, arrays, settings=None):
        return cls(arrays["weights"], arrays["means"], arrays["covariances"])

    def sample(self, n, seed=0, temperature=1.0):
        """``n`` draws, float32 (n, d): scikit-learn's ``GaussianMixture.sample`` with random_state=seed, then
        shuffled (``tfvae.metrics.GaussianMixture.sample`` gives the same draws from the fitted estimator); with a
        ``temperature`` tau, each draw x of component k moves to m_k + tau * (x - m_k)."""
        temperature = picture_arrays.check_temperature(temperature)
        rng = np.random.RandomState(seed)
        weights = self.weights / self.weights.sum()  # float32 round-off of a saved file must not fail multinomial
        counts = rng.multinomial(n, weights)
        draws = [rng.multivariate_normal(mean, cov, int(count))
                 for mean, cov, count in zip(self.means, self.covariances, counts)]
        if temperature != 1.0:  # else untouched: (x - m) + m need not give x back in floating point
            draws = [mean + temperature * (x - mean) for mean, x in zip(self.means, draws)]
        draws = np.vstack(draws)
        order = np.random.default_rng(seed).permutation(n)
        return draws[order].astype("float32")


def _dense_stack(widths, out, seed, name):
    layers = [keras.layers.Dense(w, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed + i),
                                 name=f"{name}_{i}") for i, w in enumerate(widths)]
    layers.append(keras.layers.Dense(out, kernel_initializer=keras.initializers.GlorotUniform(seed + len(widths)),
                                     name=f"{name}_{len(widths)}"))
    return keras.Sequential(layers, name=name)


class TwoStageSampler:
    """The second-stage VAE (Dai & Wipf 2019) fitted to the standardised codes; sampled through its decoder.

    Attributes:
      shift, scale: (d,) the codes' mean and standard deviation (z = shift + scale * c).
      decoder: [(kernel, bias), ...] of the second decoder's dense layers (ReLU between them).
      encoder: the same for its encoder (kept in the file; sampling does not use it).
      log_gamma: the learned log-variance of the second decoder.
    """

    name = "two_stage"
    fitted = True
    required = ("shift", "scale", "log_gamma", "dec_kernel_0", "dec_bias_0")
    settable = ("hidden", "steps", "batch_size", "learning_rate")  # fit's keyword arguments
    defaults = {}  # hidden and steps default to values computed from the codes: a saved fit is kept

    def __init__(self, shift, scale, decoder, encoder=(), log_gamma=0.0, history=None):
        self.shift, self.scale = np.asarray(shift, "float32"), np.asarray(scale, "float32")
        self.decoder = [(np.asarray(k, "float32"), np.asarray(b, "float32")) for k, b in decoder]
        self.encoder = [(np.asarray(k, "float32"), np.asarray(b, "float32")) for k, b in encoder]
        self.log_gamma = float(log_gamma)
        self.latent = len(self.shift)
        self.history = history or {}

    @staticmethod
    def default_steps(count, batch_size=256, epochs=80, lowest=2000, highest=20000):
        """Updates of a fit: ``epochs`` passes over ``count`` codes, clipped to [lowest, highest]."""
        return int(min(max(epochs * math.ceil(count / batch_size), lowest), highest))

    @classmethod
    def fit(cls, codes, seed=0, hidden=None, steps=None, batch_size=256, learning_rate=1e-3):
        """Fits the second VAE to ``codes`` (n, d) (see the module docstring).

        Args:
          codes: the training codes.
          seed: seed of the initial weights, the batches and the draws u ~ q(u | c).
          hidden: width of the hidden layers (default max(64, 4 d)).
          steps: Adam updates (default ``default_steps(n)``).
          batch_size: codes per update.
          learning_rate: Adam's initial learning rate, decayed to 0 along a cosine.
        """
        codes = np.asarray(codes, "float32")
        count, d = codes.shape
        hidden = hidden or max(64, 4 * d)
        steps = steps or cls.default_steps(count, batch_size)
        batch_size = min(batch_size, count)
        shift = codes.mean(axis=0)
        scale = codes.std(axis=0) + 1e-6
        c = (codes - shift) / scale

        encoder = _dense_stack([hidden, hidden], 2 * d, seed, "second_encoder")
        decoder = _dense_stack([hidden, hidden], d, seed + 10, "second_decoder")
        encoder.build((None, d))
        decoder.build((None, d))
        log_gamma = keras.Variable(0.0, name="log_gamma")
        variables = encoder.trainable_variables + decoder.trainable_variables + [log_gamma]
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
        optimizer = keras.optimizers.Adam(schedule)
        optimizer.build(variables)
        log_2pi = math.log(2.0 * math.pi)

        def step(batch, noise_seed):
            with tf.GradientTape() as tape:
                moments = encoder(batch, training=True)
                mean, log_var = moments[:, :d], moments[:, d:]
                eps = tf.random.stateless_normal(tf.shape(mean), seed=noise_seed)
                u = mean + tf.exp(0.5 * log_var) * eps
                g = decoder(u, training=True)
                gamma = tf.exp(log_gamma)
                recon = tf.reduce_sum(tf.square(batch - g), axis=1) / (2.0 * gamma) + 0.5 * d * (log_2pi + log_gamma)
                kl = 0.5 * tf.reduce_sum(tf.square(mean) + tf.exp(log_var) - 1.0 - log_var, axis=1)
                loss = tf.reduce_mean(recon + kl)
            grads = tape.gradient(loss, variables)
            optimizer.apply(grads, variables)
            return loss, tf.reduce_mean(kl)

        @tf.function
        def run_epoch(batches, first_step):
            # Many updates in one call: the Python loop of per-step calls costs more than the tiny networks' maths.
            loss, kl = tf.constant(0.0), tf.constant(0.0)
            for i in tf.range(tf.shape(batches)[0]):
                loss, kl = step(batches[i], tf.stack([tf.constant(seed, tf.int64), first_step + tf.cast(i, tf.int64)]))
            return loss, kl

        rng = np.random.default_rng(seed)
        per_epoch = max(count // batch_size, 1)
        per_call = per_epoch * max(1, 256 // per_epoch)  # whole passes, at least 256 updates a call for few codes
        losses, done = [], 0
        started = time.perf_counter()
        while done < steps:
            take = min(per_call, steps - done)
            passes = -(-take // per_epoch)
            order = np.concatenate([rng.permutation(count)[:per_epoch * batch_size] for _ in range(passes)])
            batches = tf.constant(c[order[:take * batch_size]].reshape(take, batch_size, d))
            loss, kl = run_epoch(batches, tf.constant(done, tf.int64))
            done += take
            losses.append((done, float(loss), float(kl)))
        if not all(math.isfinite(loss) for _, loss, _ in losses):
            raise FloatingPointError(f"the second-stage VAE's loss is not finite ({losses[-1][1]})")

        def pairs(model):
            weights = [w.numpy() for w in model.weights]
            return list(zip(weights[0::2], weights[1::2]))

        history = {"steps": steps, "hidden": hidden, "batch_size": batch_size, "final_loss": losses[-1][1],
                   "final_kl": losses[-1][2], "fit_seconds": time.perf_counter() - started}
        return cls(shift, scale, pairs(decoder), pairs(encoder), float(log_gamma.numpy()), history)

    def settings(self):
        return {"hidden": int(self.decoder[0][0].shape[1]), "layers": len(self.decoder),
                "gamma": math.exp(self.log_gamma), **self.history}

    def state(self):
        arrays = {"shift": self.shift, "scale": self.scale, "log_gamma": np.float32(self.log_gamma)}
        for part, layers in (("dec", self.decoder), ("enc", self.encoder)):
            for i, (kernel, bias) in enumerate(layers):
                arrays[f"{part}_kernel_{i}"], arrays[f"{part}_bias_{i}"] = kernel, bias
        return arrays

    @classmethod
    def from_state(cls, arrays, settings=None):
        def layers(part):
            out, i = [], 0
            while f"{part}_kernel_{i}" in arrays:
                out.append((arrays[f"{part}_kernel_{i}"], arrays[f"{part}_bias_{i}"]))
                i += 1
            return out

        return cls(arrays["shift"], arrays["scale"], layers("dec"), layers("enc"), float(arrays["log_gamma"]))

    def decode(self, u):
        """The second decoder's mean g(u) (standardised codes), float32."""
        h = np.asarray(u, "float32")
        for i, (kernel, bias) in enumerate(self.decoder):
            h = h @ kernel + bias
            if i < len(self.decoder) - 1:
                h = np.maximum(h, 0.0)
        return h.astype("float32")

    def sample(self, n, seed=0, temperature=1.0):
        """``n`` codes, float32 (n, d): u ~ N(0, tau^2 I) and e ~ N(0, tau^2 I) seeded by ``seed`` (tau the
        ``temperature``), c = g(u) + sqrt(gamma) e, z = shift + scale * c."""
        temperature = picture_arrays.check_temperature(temperature)
        draws = picture_arrays.prior_samples(n, 2 * self.latent, seed) * np.float32(temperature)
        c = self.decode(draws[:, :self.latent]) + math.exp(0.5 * self.log_gamma) * draws[:, self.latent:]
        return (self.shift + self.scale * c).astype("float32")


CLASSES = {"prior": Prior, "gmm": GaussianMixtureSampler, "two_stage": TwoStageSampler, "diffusion": DiffusionSampler}


def fit_sampler(name, codes, seed=0, **settings):
    """Fits sampler ``name`` ("gmm", "two_stage" or "diffusion") to ``codes`` (n, d) (the diffusion sampler's may be
    grids, (n, h, w, c)); ``settings`` go to its ``fit``."""
    return CLASSES[name].fit(codes, seed=seed, **settings)


def sampler_from_state(name, arrays, settings=None):
    """The sampler ``name`` rebuilt from the arrays its ``state()`` gave (as ``tfvae.samplers.npz`` read them back)."""
    return CLASSES[name].from_state(arrays, settings)
