"""Rebuild an analysed model at new group widths, as a stock Keras functional model.

The one weight slicer of tfgrow: MorphNet's expand and rebuild steps and (later) the export of a
growing run all go through it.

- `build_at_widths(model, graph, widths)`: the same graph from the model's config with changed
  `filters`/`units` (and Reshape targets), fresh weights; widths may exceed the original ones
  (the expand step).
- `rebuild_with_weights(model, graph, keep)`: keeps the given channels of every group and slices
  every weight accordingly (conv kernels on both channel axes, biases, depthwise kernels, BN gamma,
  beta and moving statistics, dense rows after a Flatten).
"""

import copy

import keras
import numpy as np

L = keras.layers


def build_at_widths(model, graph, widths, name=None):
    """A new functional model with every group at `widths[g]` channels and fresh weights."""
    widths = np.asarray(widths, np.int64)
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
    config = copy.deepcopy(model.get_config())
    if name:
        config["name"] = name
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)
        layer_name = layer_config["config"]["name"]
        if layer_name not in graph.output_layouts:
            continue
        out_width = graph.layout_width(graph.output_layouts[layer_name], widths)
        inner = layer_config["config"]
        class_name = layer_config["class_name"]
        if class_name in ("Conv2D", "SeparableConv2D"):
            inner["filters"] = out_width
        elif class_name == "Dense":
            inner["units"] = out_width
        elif class_name == "Reshape":
            inner["target_shape"] = tuple(inner["target_shape"][:-1]) + (out_width,)
    return model.__class__.from_config(config)


def rebuild_with_weights(model, graph, keep, name=None):
    """The model with only the `keep[g]` channels (indices) of every group, weights sliced."""
    widths = np.array([len(keep[g]) for g in range(graph.num_groups)], np.int64)
    new_model = build_at_widths(model, graph, widths, name=name)

    def indices(layout):
        parts, position = [], 0
        for g in layout:
            parts.append(position + np.asarray(keep[g], np.int64))
            position += int(graph.group_sizes[g])
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        new_layer = new_model.get_layer(layer.name)
        kept_in = indices(graph.input_layouts[layer.name])
        kept_out = indices(graph.output_layouts[layer.name])
        if isinstance(layer, L.Conv2D):
            kernel = layer.kernel.numpy()[:, :, kept_in][..., kept_out]
            sliced = [kernel] + ([layer.bias.numpy()[kept_out]] if layer.use_bias else [])
        elif isinstance(layer, L.Dense):
            sliced = [layer.kernel.numpy()[kept_in][:, kept_out]]
            sliced += [layer.bias.numpy()[kept_out]] if layer.use_bias else []
        elif isinstance(layer, L.DepthwiseConv2D):
            sliced = [layer.kernel.numpy()[:, :, kept_in]]
            sliced += [layer.bias.numpy()[kept_in]] if layer.use_bias else []
        elif isinstance(layer, L.SeparableConv2D):
            sliced = [
                layer.depthwise_kernel.numpy()[:, :, kept_in],
                layer.pointwise_kernel.numpy()[:, :, kept_in][..., kept_out],
            ]
            sliced += [layer.bias.numpy()[kept_out]] if layer.use_bias else []
        elif isinstance(layer, L.BatchNormalization):
            sliced = [w[kept_in] for w in weights]
        else:
            sliced = weights
        expected = [tuple(w.shape) for w in new_layer.get_weights()]
        if [tuple(w.shape) for w in sliced] != expected:
            raise ValueError(
                f"Cannot slice the weights of layer {layer.name!r} ({type(layer).__name__}): "
                f"got {[w.shape for w in sliced]}, the rebuilt layer needs {expected}"
            )
        new_layer.set_weights(sliced)
    return new_model
