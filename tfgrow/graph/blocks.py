"""Residual and plain blocks of a Keras functional model (METHOD.md §1.1, Eq. 2), from its graph.

- A *residual block* is a two-input `Add` whose one input is a tensor x (or a projection of x:
  a chain of single-input layers such as conv + BN, the shortcut) and whose other input is a
  branch F computed from x alone. The block computes `x + m F(x)` when gated.
- A *plain block* (AutoGrow's PlainLayers, `m F(x) + (1 - m) x`) has no merge in the graph, so the
  caller declares it as `(input_layer_name, output_layer_name)`: F is the subgraph from the input
  layer's output to the output layer's output, with the same shape in and out.

A block gets a layer gate only when it keeps its shape (identity shortcut) and is not the first
block of its stream: its input x must itself be the output of an earlier block (through
activations and other pass-through layers). The first block of every stage, and every projecting
or strided block, always exists (METHOD.md §1.1, §1.5). Declared plain blocks are always gated.
A branch is *closed*: its layers feed nothing outside the block, so an off block can be skipped.
"""

import dataclasses

import keras

from tfgrow.graph.analysis import PASS_THROUGH
from tfgrow.graph.nodes import nodes_in_order

L = keras.layers


@dataclasses.dataclass(frozen=True)
class Block:
    """One residual or plain block of a functional model.

    Attributes:
        name: the block's name: its `Add` layer (residual) or its output layer (plain).
        kind: "residual" or "plain".
        input_layer: the layer whose output is the block's input x.
        output_layer: the layer whose output is the block's output (the `Add`, or the declared
            output layer).
        branch_end: the layer whose output is F(x).
        branch_layers: the layers of F, in graph order.
        shortcut_layers: the projection shortcut's layers (empty for an identity shortcut).
        gated: whether the block has a layer gate.
    """

    name: str
    kind: str
    input_layer: str
    output_layer: str
    branch_end: str
    branch_layers: tuple
    shortcut_layers: tuple
    gated: bool


class _Graph:
    """Layers by name, each with the layers feeding it and the layers it feeds."""

    def __init__(self, model):
        self.order = []
        self.layers = {}
        self.inbound = {}
        self.consumers = {}
        for layer, node in nodes_in_order(model):
            self.order.append(layer.name)
            self.layers[layer.name] = layer
            self.inbound[layer.name] = [t._keras_history.operation.name for t in node.input_tensors]
            self.consumers.setdefault(layer.name, [])
            for source in self.inbound[layer.name]:
                self.consumers.setdefault(source, []).append(layer.name)
        self.outputs = {t._keras_history.operation.name for t in model.outputs}
        self.position = {name: index for index, name in enumerate(self.order)}

    def computed_from(self, end, start):
        """The layers computing `end`'s output from `start`'s alone (end included), or None."""
        seen, stack = set(), [end]
        while stack:
            name = stack.pop()
            if name == start or name in seen:
                continue
            if not self.inbound[name]:
                return None  # reaches a model input without passing through start
            seen.add(name)
            stack.extend(self.inbound[name])
        return seen

    def closed(self, layers, allowed):
        """Whether `layers` feed only each other and `allowed` (and no model output)."""
        return all(
            name not in self.outputs and set(self.consumers[name]) <= layers | allowed
            for name in layers
        )

    def sorted(self, layers):
        return tuple(sorted(layers, key=self.position.__getitem__))


def find_blocks(model, plain_blocks=()):
    """The residual blocks of `model` and its declared plain blocks, in graph order.

    Args:
        model: a functional `keras.Model`.
        plain_blocks: `(input_layer_name, output_layer_name)` pairs, one per plain block.

    Returns:
        A list of `Block`.

    Raises:
        ValueError: a declared plain block that is not one (unknown layers, a shape change, a
            branch that reads other tensors or feeds layers outside the block).
    """
    graph = _Graph(model)
    plain = [_plain_block(graph, pair) for pair in plain_blocks]
    block_outputs = {block.output_layer for block in plain}
    blocks = list(plain)
    for name in graph.order:
        layer = graph.layers[name]
        if isinstance(layer, L.Add) and len(graph.inbound[name]) == 2:
            block = _residual_block(graph, name, block_outputs)
            if block is not None:
                blocks.append(block)
                block_outputs.add(name)
    return sorted(blocks, key=lambda block: graph.position[block.output_layer])


def _residual_block(graph, name, block_outputs):
    first, second = graph.inbound[name]
    for shortcut_end, branch_end in ((first, second), (second, first)):
        x, shortcut = shortcut_end, []
        while True:
            branch = graph.computed_from(branch_end, x)
            if branch and x not in branch and graph.closed(branch, {name}):
                if shortcut and not graph.closed(set(shortcut), {name}):
                    break
                gated = not shortcut and _follows_block(graph, x, block_outputs)
                return Block(
                    name=name,
                    kind="residual",
                    input_layer=x,
                    output_layer=name,
                    branch_end=branch_end,
                    branch_layers=graph.sorted(branch),
                    shortcut_layers=graph.sorted(shortcut),
                    gated=gated,
                )
            if len(graph.inbound[x]) != 1 or len(graph.consumers[x]) != 1:
                break  # x is not a single-input step of a shortcut chain
            shortcut.append(x)
            x = graph.inbound[x][0]
    return None


def _follows_block(graph, name, block_outputs):
    """Whether `name`'s output is an earlier block's output, through pass-through layers."""
    while name not in block_outputs:
        layer = graph.layers[name]
        if not isinstance(layer, PASS_THROUGH) or len(graph.inbound[name]) != 1:
            return False
        name = graph.inbound[name][0]
    return True


def _plain_block(graph, pair):
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise ValueError(
            "Expected each plain block as (input_layer_name, output_layer_name). "
            f"Received: {pair!r}"
        )
    start, end = pair
    for name in (start, end):
        if name not in graph.layers:
            raise ValueError(
                f"Plain block {pair!r}: the model has no layer {name!r}. Name the layer whose "
                "output is the block's input and the one whose output is the block's output."
            )
    start_shape = tuple(graph.layers[start].output.shape[1:])
    end_shape = tuple(graph.layers[end].output.shape[1:])
    if start_shape != end_shape:
        raise ValueError(
            f"Plain block {pair!r} must keep its shape (m F(x) + (1 - m) x). Received: input "
            f"shape {start_shape}, output shape {end_shape}. Declare only blocks that keep "
            "resolution and width."
        )
    branch = graph.computed_from(end, start)
    if not branch or start in branch:
        raise ValueError(
            f"Plain block {pair!r}: {end!r} must be computed from {start!r}'s output alone. "
            "Received a subgraph that reads other tensors (or none)."
        )
    if not graph.closed(branch - {end}, {end}):
        outside = sorted(
            consumer
            for member in branch - {end}
            for consumer in graph.consumers[member]
            if consumer not in branch
        )
        raise ValueError(
            f"Plain block {pair!r}: layers inside the block also feed {outside}, outside it. "
            "A block's layers may feed only the block."
        )
    return Block(
        name=end,
        kind="plain",
        input_layer=start,
        output_layer=end,
        branch_end=end,
        branch_layers=graph.sorted(branch),
        shortcut_layers=(),
        gated=True,
    )
