"""The plain Keras model a `GrowingModel` computes at inference, through the one weight slicer.

A grown model's inference runs H(s) (METHOD.md §1.6) on its source model's layers:
`tfgrow.growing.executors` multiplies the output of every BatchNormalization by the mask values
of its channels (folded into gamma and beta) and the output of a producer that no batch norm
alone reads by its mask values (after its activation); `tfgrow.growing.plan` computes a gated
block as `x + m F(x)` (residual) or `m F(x) + (1 - m) x` (plain), and as `x` when its gate is
off. `plain_keras_model` rebuilds the source model through `tfgrow.graph.slicing` with exactly
that: the kept channels of every group, those mask values as output scales of the same layers
(folded into BN gamma and beta, or a kernel and bias), each kept gated block's value m as a scale
of its branch's last layer (plus `(1 - m) x` for a plain block), and every block that is off
bypassed (its output is its input x; its branch leaves the graph). An LSTM/GRU applies its mask
values inside the recurrence, where no weight can hold them: H(s) runs its kept units at value 1
and the slice is exact (`_check_unit_values`); an Embedding's values fold into its columns.
"""

import keras
import numpy as np

from tfgrow.graph import slicing
from tfgrow.graph.recurrent import RECURRENT


def plain_keras_model(grown, channels, gates, name=None, dtype_policy="float32", serving=False):
    """A stock-Keras functional model of `grown` at the given kept structures.

    Args:
        grown: a `GrowingModel`.
        channels: channel group name -> (kept indices, mask values at them); absent groups
            (fixed ones, or every group of a full network) keep all channels, unscaled.
        gates: gated block name -> gate value, or None for a block that is off; absent blocks
            compute what the source model computes.
        name: the Keras model's name (default: the source model's).
        dtype_policy: every layer's dtype policy (float32 whatever `grown` trained with), or
            None for the source layers' own.
        serving: rebuild LSTM/GRU layers stateless and unrolled (export, `GraphEdits.serving`).

    Returns:
        A functional `keras.Model` of stock layers (the source's, plus `Rescaling`/`Add` where a
        mask value cannot be folded into weights).
    """
    graph = grown.graph
    keep, values = [], []
    for g, group in enumerate(graph.group_names):
        size = int(graph.group_sizes[g])
        indices, group_values = channels.get(group, (np.arange(size), np.ones([size])))
        keep.append(np.asarray(indices, np.int64))
        values.append(np.asarray(group_values, np.float32))

    def scaled(layout):
        return any(graph.group_names[g] in channels for g in layout)

    edits = slicing.GraphEdits(dtype_policy=dtype_policy, serving=serving)
    for spec in grown.specs:
        normalizes = isinstance(spec.layer, keras.layers.BatchNormalization)
        if (normalizes or spec.applies_mask) and scaled(spec.output_layout):
            factor = np.concatenate([values[g] for g in spec.output_layout])
            if isinstance(spec.layer, RECURRENT):
                _check_unit_values(spec.name, factor)
                continue
            edits.output_scales[spec.name] = factor
    for block in grown.blocks:
        if not block.gated or block.name not in gates:
            continue
        value = gates[block.name]
        if value is None:
            edits.bypass[block.output_layer] = block.input_layer
            continue
        end = block.branch_end
        edits.output_scales[end] = edits.output_scales.get(end, 1.0) * np.float32(value)
        if block.kind == "plain":
            edits.mixes[block.output_layer] = (block.input_layer, 1.0 - float(value))
    return slicing.rebuild_with_weights(
        grown.source, graph, keep, name=name or grown.source.name, edits=edits
    )


def _check_unit_values(layer_name, values):
    """An LSTM/GRU's kept units must carry mask value 1: no stock layer holds another value.

    Its mask value multiplies the cell state inside the recurrence (METHOD.md §1.8), which no
    weight of a stock LSTM can reproduce; H(s) runs kept recurrent units at 1
    (`MaskedStructures.inference_values`), so the sliced layer is exact.
    """
    if not np.all(np.asarray(values) == 1.0):
        raise ValueError(
            f"Expected mask values 1 on the kept units of recurrent layer {layer_name!r} (a "
            f"stock LSTM/GRU cannot hold others). Received: values in [{np.min(values):.4g}, "
            f"{np.max(values):.4g}]. Export the network's H(s) (tfgrow.export.plain_model)."
        )
