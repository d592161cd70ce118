"""`tfgrow.cost.LayerCost` entries of a grown model, from its graph's cost terms.

One counter (`tfgrow.cost.count`) then serves summaries, the budget and the training-FLOPs
accumulator. Every cost term of the analysis (conv, dense, depthwise, the two
halves of a separable conv) becomes one entry, with the layer's bias; every BatchNormalization
becomes a "batch_norm" entry for its gamma and beta. An LSTM/GRU gives two entries (kernel and
recurrent kernel, `gates` matrices each) and an Embedding one (`_sequence_cost`). Layers in a
gated block's branch carry the block's name, so they count only when the block is on.
"""

import collections
import math

import keras

from tfgrow.cost import LayerCost
from tfgrow.graph import recurrent

L = keras.layers


def _side(graph, layout, prunable_names):
    """(group, width, layout) of one side: a single group, or the grouped layout."""
    counts = collections.Counter(layout)
    entries = tuple(
        (
            graph.group_names[g] if graph.group_names[g] in prunable_names else None,
            int(graph.group_sizes[g]),
            repeats,
        )
        for g, repeats in counts.items()
    )
    width = graph.layout_width(layout)
    if len(entries) == 1 and entries[0][2] == 1:
        return entries[0][0], width, ()
    return None, width, entries


def _geometry(layer, pointwise):
    """(input (H, W), strides) of a conv (the pointwise half of a separable conv: its output's
    size, stride 1); ((), (1, 1)) for a dense layer."""
    if isinstance(layer, L.Dense):
        return (), (1, 1)
    if pointwise:
        return tuple(layer.output.shape[1:3]), (1, 1)
    return tuple(layer.input.shape[1:3]), tuple(layer.strides)


def layer_costs(model, graph, prunable_names, enclosing_block):
    """The LayerCost list of a grown model.

    Args:
        model: the functional Keras model.
        graph: its `ChannelGraph`.
        prunable_names: names of the groups that carry masks.
        enclosing_block: layer name -> gated block name, for layers inside a gated branch.

    Returns:
        A list of `LayerCost`.
    """
    costs = []
    for term in graph.cost_terms:
        layer_name = term.layer.split("/")[0]
        layer = model.get_layer(layer_name)
        if isinstance(layer, recurrent.SEQUENCE_PRODUCERS):
            block = enclosing_block.get(layer_name)
            costs.append(_sequence_cost(layer, term, graph, prunable_names, block))
            continue
        in_group, in_width, in_layout = _side(graph, term.input_layout, prunable_names)
        out_group, out_width, out_layout = _side(graph, term.output_layout, prunable_names)
        pointwise = term.layer.endswith("/pointwise")
        has_bias = bool(getattr(layer, "use_bias", False)) and (
            pointwise or not isinstance(layer, L.SeparableConv2D)
        )
        kernel = (1, 1) if pointwise or isinstance(layer, L.Dense) else tuple(layer.kernel_size)
        pixels = term.flops_coefficient // (2 * math.prod(kernel))
        input_size, strides = _geometry(layer, pointwise)
        costs.append(
            LayerCost(
                name=term.layer,
                kind="dense" if isinstance(layer, L.Dense) else term.kind,
                kernel_size=kernel,
                output_pixels=pixels,
                input_group=in_group,
                output_group=out_group,
                input_width=in_width,
                output_width=out_width,
                use_bias=has_bias,
                use_batch_norm=False,
                block=enclosing_block.get(layer_name),
                input_layout=in_layout,
                output_layout=out_layout,
                input_size=input_size,
                strides=strides,
            )
        )
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization) and (layer.scale or layer.center):
            layout = graph.output_layouts[layer.name]
            group, width, entries = _side(graph, layout, prunable_names)
            costs.append(
                LayerCost(
                    name=layer.name,
                    kind="batch_norm",
                    kernel_size=(1, 1),
                    output_pixels=math.prod(layer.output.shape[1:-1]),
                    input_group=group,
                    output_group=group,
                    input_width=width,
                    output_width=width,
                    use_bias=layer.scale != layer.center,
                    use_batch_norm=layer.scale and layer.center,
                    block=enclosing_block.get(layer.name),
                    input_layout=entries,
                    output_layout=entries,
                )
            )
    return costs


def _sequence_cost(layer, term, graph, prunable_names, block):
    """The LayerCost of an Embedding, or of an LSTM/GRU's kernel or recurrent kernel term.

    Biases: an LSTM's `[4u]` and a GRU's input bias go with the kernel; a GRU with
    `reset_after` has a recurrent bias `[3u]` too (its bias is `[2, 3u]`), counted with the
    recurrent kernel.
    """
    out_group, out_width, out_layout = _side(graph, term.output_layout, prunable_names)
    if isinstance(layer, L.Embedding):
        in_group, in_width, in_layout = None, layer.input_dim, ()
        kind, gates, steps, bias = "embedding", 1, 1, False
    else:
        in_group, in_width, in_layout = _side(graph, term.input_layout, prunable_names)
        gates = recurrent.num_gates(layer)
        kind, steps = "dense", term.flops_coefficient // (2 * gates)
        is_recurrent = term.layer.endswith("/recurrent")
        bias = layer.use_bias and (not is_recurrent or bool(getattr(layer, "reset_after", False)))
    return LayerCost(
        name=term.layer,
        kind=kind,
        kernel_size=(1, 1),
        output_pixels=steps,
        input_group=in_group,
        output_group=out_group,
        input_width=in_width,
        output_width=out_width,
        use_bias=bias,
        use_batch_norm=False,
        block=block,
        input_layout=in_layout,
        output_layout=out_layout,
        gates=gates,
    )
