"""The residual conv networks of ``arch="resnet"``: their bodies, between the image and the dense layers.

Depth comes from the image size, width from ``filters``. The encoder halves the image sides with stride-2
convolutions while both are even and the halves are at least 4 (``num_stages``): 28 -> 14 -> 7 (2 stages),
64 -> 32 -> 16 -> 8 -> 4 (4), 128 -> ... -> 4 (5). Stage ``i`` has ``filters[i]`` channels (the last entry
repeats when there are more stages than entries), so ``--filters=16,32,64,128`` gives a 64x64 resnet the same
widths as the conv network of configs/folder_vae_64.cfg.

    encoder: image -> Conv2D(filters[0], 3) stem
             -> per stage: Conv2D(width, 3, stride 2) -> ``blocks`` residual blocks
             -> ReLU -> (Flatten, Dense, latent heads: tfvae.models.networks)
    decoder: (Dense to the smallest grid: networks) -> per stage, smallest first: residual blocks
             -> nearest-neighbour 2x upsampling -> Conv2D(the previous stage's width, 3)
             -> ReLU -> Conv2D(channels, 3): logits

A residual block is pre-activation, ``x + conv(relu(conv(relu(x))))`` (He et al. 2016, "Identity mappings"),
with no normalisation: BatchNorm's statistics at batch 32 split over two replicas (16 images each) are noisy and
make a code depend on the other images in its batch, and differ between training and evaluation; GroupNorm
avoids both but costs time on a CPU. Instead the block's last convolution starts at zero (kernel and bias), so
that every block is the identity at initialisation (SkipInit, De & Smith 2020; Fixup, Zhang et al. 2019): the
signal's scale does not grow with depth, and the network starts as the plain strided conv stack it contains.

Upsampling is nearest-neighbour then a 3x3 convolution rather than a transposed convolution, which avoids the
checkerboard pattern of a stride-2, kernel-3 transposed convolution (Odena et al. 2016).
"""

from keras import layers

MIN_SIDE = 4  # the encoder stops halving before a side would fall below this


def num_stages(image_shape):
    """How many stride-2 stages the encoder of an image of ``image_shape`` has (0: its sides are odd or small)."""
    height, width = image_shape[0], image_shape[1]
    stages = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= MIN_SIDE:
        height, width, stages = height // 2, width // 2, stages + 1
    return stages


def stage_widths(filters, stages):
    """Channels of each stage: ``filters`` in order, the last entry repeated."""
    return [filters[min(i, len(filters) - 1)] for i in range(stages)]


def residual_block(h, name, activation="relu"):
    """``h + conv(act(conv(act(h))))``, the second convolution zero-initialised: the identity at first."""
    width = h.shape[-1]
    branch = layers.Activation(activation, name=f"{name}_act1")(h)
    branch = layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1")(branch)
    branch = layers.Activation(activation, name=f"{name}_act2")(branch)
    branch = layers.Conv2D(width, 3, padding="same", kernel_initializer="zeros", bias_initializer="zeros",
                           name=f"{name}_conv2")(branch)
    return layers.Add(name=f"{name}_add")([h, branch])


def encoder_body(image, filters, blocks=1):
    """The encoder's convolutions from ``image`` to its smallest grid, activated (see the module docstring)."""
    widths = stage_widths(filters, num_stages(tuple(image.shape[1:])))
    h = layers.Conv2D(widths[0], 3, padding="same", name="stem")(image)
    for i, width in enumerate(widths):
        h = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{i}")(h)
        for j in range(blocks):
            h = residual_block(h, f"enc{i}_block{j}")
    return layers.Activation("relu", name="enc_out")(h)


def grid_shape(image_shape, filters):
    """(height, width, channels) of the smallest grid, where the encoder ends and the decoder starts."""
    stages = num_stages(image_shape)
    return image_shape[0] >> stages, image_shape[1] >> stages, stage_widths(filters, stages)[-1]


def decoder_body(grid, image_shape, filters, channels, blocks=1):
    """The decoder's convolutions from ``grid`` (a tensor of ``grid_shape``) to ``channels`` values per pixel of
    ``image_shape`` (logits, or a likelihood's parameters)."""
    widths = stage_widths(filters, num_stages(image_shape))
    h = grid
    for i in reversed(range(len(widths))):
        for j in range(blocks):
            h = residual_block(h, f"dec{i}_block{j}")
        h = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i}")(h)
        h = layers.Conv2D(widths[max(i - 1, 0)], 3, padding="same", name=f"up{i}_conv")(h)
    h = layers.Activation("relu", name="dec_out")(h)
    return layers.Conv2D(channels, 3, padding="same", name="logits")(h)
