"""FLOPs of a model, counted from its layers.

Convention (the usual one for training-throughput figures):

* a multiply-accumulate (MAC) is 2 FLOPs;
* Conv2D: out_h * out_w * out_channels * (k_h * k_w * in_channels / groups) MACs per image;
* Conv2DTranspose: in_h * in_w * in_channels * (k_h * k_w * out_channels) MACs per image (each input pixel
  is scattered through the whole kernel);
* Dense: in_features * units MACs per image (per position, for inputs with extra axes);
* activations, biases, the loss, the optimizer and data movement are not counted;
* one training image costs 3x the forward FLOPs: the forward pass, the gradient with respect to the layer
  inputs and the gradient with respect to the weights each cost about one forward pass. (The first layer's
  input gradient is not actually computed, so this overstates the work slightly; ``forward_flops`` is exact.)
"""

import math

import keras

TRAINING_MULTIPLIER = 3


def layer_macs(layer):
    """Multiply-accumulates of one layer for one example (0 for layers that do no matmul/conv work)."""
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(f"{layer.name}: only channels_last convolutions are counted")
    if isinstance(layer, keras.layers.Conv2DTranspose):
        _, in_h, in_w, in_c = _shape(layer.input)
        k_h, k_w = layer.kernel_size
        return in_h * in_w * in_c * k_h * k_w * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        out_h, out_w, out_c = _shape(layer.output)[1:]
        k_h, k_w = layer.kernel_size
        in_c = _shape(layer.input)[-1]
        return out_h * out_w * out_c * k_h * k_w * in_c // layer.groups
    if isinstance(layer, keras.layers.Dense):
        in_shape = _shape(layer.input)
        return math.prod(in_shape[1:]) * layer.units
    return 0


def _shape(tensor):
    return tuple(tensor.shape)


def leaf_layers(model):
    """Every non-model layer inside ``model``, nested functional models included, each once."""
    seen, out = set(), []
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        children = list(getattr(layer, "layers", []) or [])
        if not children and layer is not model:
            out.append(layer)
        for attr in ("encoder", "decoder"):
            child = getattr(layer, attr, None)
            if isinstance(child, keras.layers.Layer):
                children.append(child)
        stack.extend(reversed(children))
    return out


def forward_flops(model):
    """FLOPs of one forward pass of one example through ``model`` (see the module docstring)."""
    return 2 * sum(layer_macs(layer) for layer in leaf_layers(model))


def training_flops(model):
    """FLOPs of training on one example: forward + both backward passes (3x forward, see the docstring)."""
    return TRAINING_MULTIPLIER * forward_flops(model)


def per_layer(model):
    """(layer name, forward MACs) for every layer that does matmul/conv work, in model order."""
    return [(layer.name, layer_macs(layer)) for layer in leaf_layers(model) if layer_macs(layer)]
