r"""The diffusion sampler's denoiser over code grids: a small U-Net (Ronneberger et al. 2015, "U-Net"; in the form of
DDPM's, Ho et al. 2020, appendix B, scaled down to a code grid), as plain weights evaluated with TensorFlow's ops.

It maps standardised grid codes c_t (n, h, w, c) at times t (n,) to the eps or v estimate of the same shape
(``tfvae.samplers.diffusion`` states the process). With width C, ``levels`` L and widths C_l = C 2^l on grids of
ceil(h / 2^l) x ceil(w / 2^l) cells:

    m = time embedding of t                    (the MLP denoiser's: sinusoids, two SiLU layers; denoiser.py)
    x = conv3x3(c_t)                           (C_0 channels)
    down, l = 0 .. L-1:   x = R(x, m); keep x as s_l;  if l < L-1: x = conv3x3 with stride 2 (C_l -> C_{l+1})
    middle:               x = R(x, m)
    up, l = L-1 .. 0:     x = R([x, s_l], m) (2 C_l -> C_l);  if l > 0: x = conv3x3(nearest 2x up, cropped to s_{l-1}'s
                          grid) (C_l -> C_{l-1})
    output:               conv3x3(SiLU(GN(x))) -> c channels, its kernel starting at 0

with the residual block of DDPM (its "ResnetBlock", without dropout)

    R(x, m) = P x + conv3x3(SiLU(GN(u))),   u = conv3x3(SiLU(GN(x))) + W_m m + b_m   (W_m m added in every cell)

where P is a 1 x 1 convolution when the widths differ and the identity otherwise, the second convolution starts at 0
(so every block starts as the identity), and GN is group normalisation (Wu & He 2018) over gcd(8, width) groups of
channels and every cell, without learned scale and shift (as the MLP's layer norm has none). Convolutions pad with
zeros ("same"), so a 7 x 7 grid goes to 4 x 4 and back. Every 3 x 3 kernel starts Glorot-uniform over its 9 c_in
inputs and 9 c_out outputs (Keras's default for a convolution), biases at 0.

Why convolutions: a cell's denoising depends most on its neighbours', and the same local pattern may sit anywhere in
the grid; the shared 3 x 3 kernels say so, where the MLP over the flattened code (denoiser.py) must learn each cell's
dependencies separately. The lowest level's blocks see the whole of a 7 x 7 or 8 x 8 grid.

The weights are named ``in_kernel``, ``down<l>_<part>``, ``downsample<l>_kernel``, ``middle_<part>``, ``up<l>_<part>``,
``upsample<l>_kernel``, ``out_kernel`` (and a ``_bias`` beside each kernel; parts: ``kernel_0``, ``kernel_1``,
``time_kernel``, ``skip_kernel``) and ``time_kernel_<i>`` as the MLP's; ``shapes`` lists them all, so a set of weights
is checked against the shapes its widths imply.
"""

import math

import numpy as np
import tensorflow as tf

from tfvae.samplers.denoiser import TENSORFLOW, time_embedding


def _block(shapes, name, c_in, c_out, time_width):
    shapes.update({f"{name}_kernel_0": (3, 3, c_in, c_out), f"{name}_bias_0": (c_out,),
                   f"{name}_time_kernel": (time_width, c_out), f"{name}_time_bias": (c_out,),
                   f"{name}_kernel_1": (3, 3, c_out, c_out), f"{name}_bias_1": (c_out,)})
    if c_in != c_out:
        shapes.update({f"{name}_skip_kernel": (1, 1, c_in, c_out), f"{name}_skip_bias": (c_out,)})


def _convolution(shapes, name, kernel_shape):
    shapes.update({f"{name}_{part}": shape for part, shape in (("kernel", kernel_shape), ("bias", kernel_shape[-1:]))})


def shapes(channels, width, levels, embed, time_width=None):
    """name -> shape of every weight of a U-Net over grids of ``channels`` channels (module docstring)."""
    time_width = time_width or 4 * width
    widths = [width * 2 ** level for level in range(levels)]
    out = {"time_kernel_0": (embed, time_width), "time_bias_0": (time_width,),
           "time_kernel_1": (time_width, time_width), "time_bias_1": (time_width,),
           "in_kernel": (3, 3, channels, width), "in_bias": (width,),
           "out_kernel": (3, 3, width, channels), "out_bias": (channels,)}
    for level, c in enumerate(widths):
        _block(out, f"down{level}", c, c, time_width)
        if level < levels - 1:
            _convolution(out, f"downsample{level}", (3, 3, c, widths[level + 1]))
        _block(out, f"up{level}", 2 * c, c, time_width)
        if level > 0:
            _convolution(out, f"upsample{level}", (3, 3, c, widths[level - 1]))
    _block(out, "middle", widths[-1], widths[-1], time_width)
    return out


def is_unet(params):
    """Whether the weights ``params`` are a U-Net's (convolution kernels), not the MLP's."""
    return np.ndim(params["in_kernel"]) == 4


def levels_of(params):
    count = 0
    while f"down{count}_kernel_0" in params:
        count += 1
    return count


def check_shapes(code_shape, params):
    """Raises ValueError unless ``params`` are the weights of one U-Net over grids of ``code_shape`` (h, w, c)."""
    if len(code_shape) != 3 or not is_unet(params):
        raise ValueError(f"U-Net weights need grid codes (h, w, c), not codes of shape {tuple(code_shape)}")
    kernel = np.shape(params["in_kernel"])
    expected = shapes(code_shape[-1], kernel[-1], max(levels_of(params), 1), np.shape(params["time_kernel_0"])[0],
                      np.shape(params["time_kernel_0"])[1])
    wrong = [f"{name} {np.shape(params[name]) if name in params else 'missing'}, not {shape}"
             for name, shape in expected.items() if name not in params or np.shape(params[name]) != shape]
    wrong += [f"{name} is not a weight of this U-Net" for name in params if name not in expected]
    if kernel[2] != code_shape[-1] or expected["time_kernel_0"][0] % 2 or wrong:
        raise ValueError(f"the U-Net's weights do not fit codes of shape {tuple(code_shape)} "
                         f"({', '.join(wrong[:2]) or 'in_kernel ' + str(kernel)})")


def initial_params(channels, width, levels, embed, seed):
    """Glorot-uniform kernels (each block's second kernel and the output's at 0) and zero biases, float32."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in shapes(channels, width, levels, embed).items():
        if name.endswith("kernel_1") and not name.startswith("time") or name == "out_kernel" or "bias" in name:
            params[name] = np.zeros(shape, "float32")
        else:
            receptive = int(np.prod(shape[:-2])) if len(shape) == 4 else 1
            limit = math.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
            params[name] = rng.uniform(-limit, limit, shape).astype("float32")
    return params


def _conv(params, name, x, stride=1):
    kernel, bias = (f"{name}_{part}" for part in ("kernel", "bias"))
    return tf.nn.conv2d(x, params[kernel], stride, "SAME") + params[bias]


def _group_norm(x):
    _, h, w, c = x.shape
    groups = math.gcd(8, c)
    grouped = tf.reshape(x, [-1, h, w, groups, c // groups])
    mean, variance = tf.nn.moments(grouped, axes=[1, 2, 4], keepdims=True)
    return tf.reshape((grouped - mean) * tf.math.rsqrt(variance + 1e-5), [-1, h, w, c])


def _act(x):
    return tf.nn.silu(_group_norm(x))


def _residual(params, name, x, m):
    u = tf.nn.conv2d(_act(x), params[f"{name}_kernel_0"], 1, "SAME") + params[f"{name}_bias_0"]
    u = u + (m @ params[f"{name}_time_kernel"] + params[f"{name}_time_bias"])[:, None, None, :]
    u = tf.nn.conv2d(_act(u), params[f"{name}_kernel_1"], 1, "SAME") + params[f"{name}_bias_1"]
    skip = _conv(params, f"{name}_skip", x) if f"{name}_skip_kernel" in params else x
    return skip + u


def denoise(params, c, t):
    """The U-Net's output (the eps or v estimate), (n, h, w, c), for grid codes ``c`` at times ``t`` (n,) or (1,),
    with TensorFlow's ops; ``params`` maps the weights' names to tensors or arrays."""
    m = time_embedding(params, t, TENSORFLOW)
    levels = levels_of(params)
    x = _conv(params, "in", c)
    skips = []
    for level in range(levels):
        x = _residual(params, f"down{level}", x, m)
        skips.append(x)
        if level < levels - 1:
            x = _conv(params, f"downsample{level}", x, stride=2)
    x = _residual(params, "middle", x, m)
    for level in reversed(range(levels)):
        x = _residual(params, f"up{level}", tf.concat([x, skips[level]], axis=-1), m)
        if level > 0:
            h, w = skips[level - 1].shape[1:3]
            x = tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)[:, :h, :w, :]
            x = _conv(params, f"upsample{level}", x)
    return _conv(params, "out", _act(x))


def evaluator(params, code_shape, chunk=4096):
    """``f(c, t)``: ``denoise`` with the weights ``params`` held as TensorFlow constants, traced once for grids of
    ``code_shape`` and one time t (1,), evaluated ``chunk`` codes at a time; numpy in, numpy out."""
    weights = {k: tf.constant(v) for k, v in params.items()}
    network = tf.function(lambda codes, times: denoise(weights, codes, times), input_signature=[
        tf.TensorSpec([None, *code_shape], tf.float32), tf.TensorSpec([1], tf.float32)])
    return lambda c, t: np.concatenate([network(c[i:i + chunk], t).numpy() for i in range(0, len(c), chunk)])
