"""Encoder and decoder builders (functional API).

Every size derives from ``image_shape``: a conv stack of ``len(filters)`` stride-2 layers needs image sides
divisible by ``2 ** len(filters)``. The defaults are the Keras VAE example's shape: Conv2D(32) -> Conv2D(64)
-> Dense(16) -> z, and z -> Dense(7*7*64) -> Conv2DTranspose(64) -> Conv2DTranspose(32) -> logits for
28x28 images. ``arch="mlp"`` with ``hidden=400`` is the PyTorch example's 784-400-20 dense VAE.
``arch="resnet"`` puts residual stages between the image and the same dense layers, as many stages as halve the
image sides down to about 4x4, ``filters`` giving their widths (``tfvae.models.resnet``).

The decoder returns logits; a sigmoid is applied only when an image is produced.
"""

import keras
from keras import layers

from tfvae.models import resnet
from tfvae.models.layers import ClipLogVar, Conv2DTranspose, DecoderVariance, Sampling

ARCHS = ("conv", "mlp", "resnet")
VARIANCE_LAYER = "decoder_variance"


def downsampling_factor(arch, filters):
    """How much the conv encoder shrinks each image side (1 for the MLP; the resnet's: ``resnet.num_stages``)."""
    return 2 ** len(filters) if arch == "conv" else 1


def check_image_shape(image_shape, arch, filters):
    """Raises ValueError if ``image_shape`` does not fit the architecture."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    height, width, _ = image_shape
    if arch == "resnet":
        if not resnet.num_stages(image_shape):
            raise ValueError(f"image size {height}x{width} is too small or odd for the resnet, which halves even "
                             f"sides down to about {resnet.MIN_SIDE}; use an even --image_size of 8 or more")
        return
    factor = downsampling_factor(arch, filters)
    if height % factor or width % factor:
        raise ValueError(
            f"image size {height}x{width} is not divisible by {factor}, the conv encoder's downsampling "
            f"({len(filters)} stride-2 layers); use an --image_size that is a multiple of {factor}"
        )


def build_encoder(image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                  variational=True, seed=None, name="encoder"):
    """Builds q(z | x[, y]).

    Args:
      image_shape: (height, width, channels) of the input images, pixels in [0, 1].
      latent_dim: size of z.
      arch: "conv" (stride-2 Conv2D stack), "resnet" (residual stages, ``tfvae.models.resnet``) or "mlp"
        (dense layers).
      filters: Conv2D filters per stride-2 layer (conv), or per stage (resnet; the last one repeats).
      hidden: units of the dense layer before the latent heads.
      num_classes: > 0 adds a one-hot ``label`` input (conditional VAE).
      variational: False gives a deterministic bottleneck (plain autoencoder).
      seed: seed of the sampling layer's noise.
      name: model name.

    Returns:
      A functional ``keras.Model`` taking ``image`` (and ``label``) and returning a dict with ``z_mean``
      and ``z`` (and ``z_log_var`` when variational; for the plain autoencoder ``z == z_mean``).
    """
    check_image_shape(image_shape, arch, filters)
    image = keras.Input(image_shape, name="image")
    inputs = [image]
    h = image
    if arch == "conv":
        for f in filters:
            h = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(h)
    elif arch == "resnet":
        h = resnet.encoder_body(h, filters)
    h = layers.Flatten()(h)
    if num_classes:
        label = keras.Input((num_classes,), name="label")
        inputs.append(label)
        h = layers.Concatenate()([h, label])
    h = layers.Dense(hidden, activation="relu")(h)
    # The latent heads stay in float32 under mixed precision: the KL and the noise are computed from them.
    z_mean = layers.Dense(latent_dim, name="z_mean", dtype="float32")(h)
    if variational:
        z_log_var = layers.Dense(latent_dim, name="z_log_var_raw", dtype="float32")(h)
        z_log_var = ClipLogVar(name="z_log_var", dtype="float32")(z_log_var)
        z = Sampling(seed=seed, name="z", dtype="float32")([z_mean, z_log_var])
        outputs = {"z_mean": z_mean, "z_log_var": z_log_var, "z": z}
    else:
        # float32 like the heads: under mixed precision an Identity layer would compute (and round z) in float16.
        outputs = {"z_mean": z_mean, "z": layers.Identity(name="z", dtype="float32")(z_mean)}
    return keras.Model(inputs if num_classes else image, outputs, name=name)


def build_decoder(image_shape, latent_dim, *, arch="conv", filters=(32, 64), hidden=16, num_classes=0,
                  variance=False, output_channels=None, name="decoder"):
    """Builds p(x | z[, y]) as logits.

    Args:
      image_shape: (height, width, channels) of the images to produce.
      latent_dim: size of z.
      arch: "conv" (Dense -> Reshape -> stride-2 Conv2DTranspose stack), "resnet" (Dense -> Reshape ->
        residual stages with nearest-neighbour upsampling) or "mlp".
      filters: the encoder's filters; the decoder mirrors them.
      hidden: units of the MLP decoder's hidden layer (unused by conv and resnet, which map z straight to the
        grid).
      num_classes: > 0 adds a one-hot ``label`` input (conditional VAE).
      variance: end with a ``DecoderVariance`` layer (named ``decoder_variance``), which holds the shared
        variance of a Gaussian decoder (``loss=gaussian``) and passes the logits through.
      output_channels: values per pixel (``tfvae.likelihoods.output_channels``: a gaussian_pixel or
        logistic_mixture decoder emits its distribution's parameters); default the image's channels (logits).
      name: model name.

    Returns:
      A functional ``keras.Model`` from ``z`` (and ``label``) to per-pixel logits (parameters) of shape
      (height, width, output_channels).
    """
    check_image_shape(image_shape, arch, filters)
    height, width, _ = image_shape
    channels = output_channels or image_shape[2]
    z = keras.Input((latent_dim,), name="z")
    inputs = [z]
    h = z
    if num_classes:
        label = keras.Input((num_classes,), name="label")
        inputs.append(label)
        h = layers.Concatenate()([z, label])
    if arch == "conv":
        factor = downsampling_factor(arch, filters)
        grid = (height // factor, width // factor, filters[-1])
        h = layers.Dense(grid[0] * grid[1] * grid[2], activation="relu")(h)
        h = layers.Reshape(grid)(h)
        for f in reversed(filters):
            h = Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(h)
        h = Conv2DTranspose(channels, 3, padding="same", name="logits")(h)
    elif arch == "resnet":
        grid = resnet.grid_shape(image_shape, filters)
        h = layers.Dense(grid[0] * grid[1] * grid[2], activation="relu")(h)
        h = resnet.decoder_body(layers.Reshape(grid)(h), image_shape, filters, channels)
    else:
        h = layers.Dense(hidden, activation="relu")(h)
        h = layers.Dense(height * width * channels)(h)
        h = layers.Reshape((height, width, channels), name="logits")(h)
    # Under mixed precision the last layer computes in bfloat16/float16 (in float32 it was a large share of a bf16
    # training step: a 1-channel convolution is slow in oneDNN; docs/performance.md#how-the-defaults-were-chosen)
    # and its logits are cast to float32 here, before the loss. Exported models (training.export_models) are
    # float32 throughout.
    logits = layers.Activation("linear", name="logits_float32", dtype="float32")(h)
    if variance:
        logits = DecoderVariance(name=VARIANCE_LAYER, dtype="float32")(logits)
    return keras.Model(inputs if num_classes else z, logits, name=name)


def variance_layer(decoder):
    """The decoder's ``DecoderVariance`` layer, or None (a Bernoulli or fixed-variance decoder)."""
    return next((layer for layer in decoder.layers if isinstance(layer, DecoderVariance)), None)
