"""Rebuild an analysed model at new group widths, as a stock Keras functional model.

The one weight slicer of tfgrow: MorphNet's expand and rebuild steps and the export of a grown
model (`tfgrow.growing.plain`) all go through it.

- `build_at_widths(model, graph, widths)`: the same graph (`keras.models.clone_model`) with
  changed `filters`/`units` (and Reshape targets), fresh weights; widths may exceed the original
  ones (the expand step).
- `rebuild_with_weights(model, graph, keep, edits=None)`: keeps the given channels of every group
  and slices every weight accordingly (conv kernels on both channel axes, biases, depthwise
  kernels, BN gamma, beta and moving statistics, dense rows after a Flatten). `GraphEdits`
  additionally scale layer outputs (folded into the layer's weights where that is exact),
  bypass layers (a removed block's `Add` becomes its input x) and mix a skip tensor into a
  layer's output (a plain block `m F(x) + (1 - m) x`).
"""

import dataclasses

import keras
import numpy as np

from tfgrow.graph.recurrent import RECURRENT, num_gates

L = keras.layers
CONV_LIKE = (L.Conv2D, L.Dense, L.DepthwiseConv2D, L.SeparableConv2D)
# Activations f with f(v z) = v f(z) for every v > 0: an output scale folds into the kernel.
HOMOGENEOUS_ACTIVATIONS = ("linear", "relu")


@dataclasses.dataclass
class GraphEdits:
    """Changes made to a model's graph while `rebuild_with_weights` rebuilds it.

    Attributes:
        output_scales: layer name -> factor (a scalar, or one value per kept output channel)
            multiplying the layer's output. Folded into BN gamma and beta, or into the kernel and
            bias of a conv/dense layer with a linear or ReLU activation (factors > 0); otherwise a
            `Rescaling` layer named `<layer>_scale` follows the layer.
        bypass: layer name -> the layer whose output replaces its output (the layer and whatever
            only it reads drop out of the graph).
        mixes: layer name -> (skip layer name, skip factor): the layer's (scaled) output becomes
            `output + factor * skip` (a `Rescaling` `<layer>_skip` and an `Add` `<layer>_mix`).
        dtype_policy: the Keras dtype policy of every rebuilt and added layer (export: float32
            whatever the model trained with), or None: each layer keeps its own.
        serving: rebuild LSTM/GRU layers for serving (export): `stateful=False` (every batch
            starts from zero states) and `unroll=True` (the sequence length is fixed; TFLite's
            converter takes an unrolled recurrence with its built-in ops, Keras' while loop
            only with SELECT_TF_OPS).
    """

    output_scales: dict = dataclasses.field(default_factory=dict)
    bypass: dict = dataclasses.field(default_factory=dict)
    mixes: dict = dataclasses.field(default_factory=dict)
    dtype_policy: str | None = None
    serving: bool = False


def _check_widths(graph, widths):
    if widths.shape != (graph.num_groups,):
        raise ValueError(
            f"Expected one width per group ({graph.num_groups}). Received: shape {widths.shape}"
        )
    for g in np.flatnonzero(graph.fixed):
        if widths[g] != graph.group_sizes[g]:
            raise ValueError(
                f"Group {graph.group_names[g]!r} is fixed ({graph.fixed_reasons[int(g)]}) at "
                f"width {graph.group_sizes[g]}. Received: {widths[g]}"
            )
    if widths.min() < 1:
        raise ValueError(f"Expected every width >= 1. Received: min width {widths.min()}")


def _clone_at_widths(layer, graph, widths, edits):
    """A fresh copy of `layer` whose output has the layout's width at `widths` (and the dtype
    policy and statefulness `edits` ask for)."""
    config = layer.get_config()
    if edits.dtype_policy is not None:
        config["dtype"] = edits.dtype_policy
    if edits.serving and isinstance(layer, RECURRENT):
        config.update(stateful=False, unroll=True)
    if layer.name in graph.output_layouts:
        out_width = graph.layout_width(graph.output_layouts[layer.name], widths)
        if isinstance(layer, L.Conv2D | L.SeparableConv2D) and not isinstance(
            layer, L.DepthwiseConv2D
        ):
            config["filters"] = out_width
        elif isinstance(layer, L.Dense | L.LSTM | L.GRU):
            config["units"] = out_width
        elif isinstance(layer, L.Embedding):
            config["output_dim"] = out_width
        elif isinstance(layer, L.Reshape):
            config["target_shape"] = tuple(config["target_shape"][:-1]) + (out_width,)
    return layer.__class__.from_config(config)


def folds_scale(layer, factor):
    """Whether multiplying `layer`'s output by `factor` can be folded into its weights."""
    if isinstance(layer, L.BatchNormalization):
        return bool(layer.scale)
    if isinstance(layer, L.Embedding):
        return True
    if isinstance(layer, CONV_LIKE):
        activation = keras.activations.serialize(layer.activation)
        activation = activation if isinstance(activation, str) else None
        if activation == "linear":
            return True
        return activation == "relu" and bool(np.all(np.asarray(factor) > 0))
    return False


def build_at_widths(model, graph, widths, name=None, edits=None):
    """A new functional model with every group at `widths[g]` channels and fresh weights.

    Args:
        model: the analysed functional model.
        graph: its `ChannelGraph`.
        widths: one width per group (fixed groups at their full width).
        name: the new model's name (default: the model's).
        edits: optional `GraphEdits` (its scales only decide where `Rescaling` layers go).

    Returns:
        A functional `keras.Model` of the same layer types and names.
    """
    widths = np.asarray(widths, np.int64)
    _check_widths(graph, widths)
    edits = edits or GraphEdits()
    outputs = {}  # layer name -> its output in the new graph (after edits)

    def call(layer, *args, **kwargs):
        if layer.name in edits.bypass:
            result = outputs[edits.bypass[layer.name]]
        else:
            result = layer(*args, **kwargs)
            factor = edits.output_scales.get(layer.name)
            dtype = edits.dtype_policy
            if factor is not None and not folds_scale(model.get_layer(layer.name), factor):
                scale = L.Rescaling(_as_scale(factor), name=f"{layer.name}_scale", dtype=dtype)
                result = scale(result)
            if layer.name in edits.mixes:
                source, skip_factor = edits.mixes[layer.name]
                skip = L.Rescaling(float(skip_factor), name=f"{layer.name}_skip", dtype=dtype)
                result = L.Add(name=f"{layer.name}_mix", dtype=dtype)(
                    [result, skip(outputs[source])]
                )
        outputs[layer.name] = result
        return result

    # The inputs keep their layers' names (a SavedModel's signature names its inputs by them).
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(
            batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name
        ),
        model.input,
    )
    clone = keras.models.clone_model(
        model,
        input_tensors=inputs,
        clone_function=lambda layer: _clone_at_widths(layer, graph, widths, edits),
        call_function=call,
    )
    return keras.Model(clone.input, clone.output, name=name or model.name)


def _as_scale(factor):
    factor = np.asarray(factor, np.float32)
    return float(factor) if factor.ndim == 0 else factor.tolist()


def rebuild_with_weights(model, graph, keep, name=None, edits=None):
    """The model with only the `keep[g]` channels (indices) of every group, weights sliced.

    Args:
        model: the analysed functional model.
        graph: its `ChannelGraph`.
        keep: per group, the indices of the channels to keep.
        name: the new model's name (default: the model's).
        edits: optional `GraphEdits` (output scales, bypassed layers, skip mixes).

    Returns:
        A functional `keras.Model` of stock layers.
    """
    edits = edits or GraphEdits()
    widths = np.array([len(keep[g]) for g in range(graph.num_groups)], np.int64)
    new_model = build_at_widths(model, graph, widths, name=name, edits=edits)
    present = {layer.name for layer in new_model.layers}

    def indices(layout):
        parts, position = [], 0
        for g in layout:
            parts.append(position + np.asarray(keep[g], np.int64))
            position += int(graph.group_sizes[g])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    for layer in model.layers:
        if not layer.weights or layer.name not in present:
            continue
        new_layer = new_model.get_layer(layer.name)
        sliced = _sliced_weights(
            layer,
            indices(graph.input_layouts[layer.name]),
            indices(graph.output_layouts[layer.name]),
        )
        factor = edits.output_scales.get(layer.name)
        if factor is not None and folds_scale(layer, factor):
            sliced = _scaled_weights(layer, sliced, factor)
        expected = [tuple(w.shape) for w in new_layer.get_weights()]
        if [tuple(w.shape) for w in sliced] != expected:
            raise ValueError(
                f"Cannot slice the weights of layer {layer.name!r} ({type(layer).__name__}): "
                f"got {[w.shape for w in sliced]}, the rebuilt layer needs {expected}"
            )
        new_layer.set_weights(sliced)
    return new_model


def _sliced_weights(layer, kept_in, kept_out):
    """`layer`'s weights (in `get_weights` order) at the kept input and output channels."""
    if isinstance(layer, L.SeparableConv2D):
        sliced = [
            layer.depthwise_kernel.numpy()[:, :, kept_in],
            layer.pointwise_kernel.numpy()[:, :, kept_in][..., kept_out],
        ]
        return sliced + ([layer.bias.numpy()[kept_out]] if layer.use_bias else [])
    if isinstance(layer, L.DepthwiseConv2D):
        sliced = [layer.kernel.numpy()[:, :, kept_in]]
        return sliced + ([layer.bias.numpy()[kept_in]] if layer.use_bias else [])
    if isinstance(layer, L.Conv2D):
        kernel = layer.kernel.numpy()[:, :, kept_in][..., kept_out]
        return [kernel] + ([layer.bias.numpy()[kept_out]] if layer.use_bias else [])
    if isinstance(layer, L.Dense):
        sliced = [layer.kernel.numpy()[kept_in][:, kept_out]]
        return sliced + ([layer.bias.numpy()[kept_out]] if layer.use_bias else [])
    if isinstance(layer, L.BatchNormalization):
        return [w[kept_in] for w in layer.get_weights()]
    if isinstance(layer, L.Embedding):
        return [layer.embeddings.numpy()[:, kept_out]]
    if isinstance(layer, RECURRENT):
        return _sliced_recurrent(layer, kept_in, kept_out)
    return layer.get_weights()


def _sliced_recurrent(layer, kept_in, kept_out):
    """An LSTM/GRU's kernel, recurrent kernel and bias at the kept inputs and units: each gate
    block's columns (block g at `g * units`) at the kept units, the recurrent kernel's rows too."""
    cell = layer.cell
    columns = np.concatenate([g * layer.units + kept_out for g in range(num_gates(layer))])
    sliced = [
        cell.kernel.numpy()[kept_in][:, columns],
        cell.recurrent_kernel.numpy()[kept_out][:, columns],
    ]
    return sliced + ([cell.bias.numpy()[..., columns]] if cell.use_bias else [])


def _scaled_weights(layer, sliced, factor):
    """Sliced weights of a layer whose output is multiplied by `factor` (see `folds_scale`)."""
    if isinstance(layer, L.BatchNormalization):
        # Weights in order gamma, beta (each if present), moving mean, moving variance.
        scaled = 1 + int(bool(layer.center))
        return [w * factor if i < scaled else w for i, w in enumerate(sliced)]
    if isinstance(layer, L.Embedding):  # [vocabulary, dim]: a scale per output dimension
        return [sliced[0] * np.asarray(factor, np.float32)]
    if isinstance(layer, L.DepthwiseConv2D):
        # Kernel [kh, kw, C, 1]: output channel c is input channel c.
        kernel = sliced[0] * np.reshape(factor, [1, 1, -1, 1]).astype(np.float32)
        return [kernel] + [w * factor for w in sliced[1:]]
    # Conv2D and Dense: kernel, bias; SeparableConv2D: depthwise, pointwise kernel, bias.
    first = 1 if isinstance(layer, L.SeparableConv2D) else 0
    return sliced[:first] + [w * factor for w in sliced[first:]]
