"""The execution plan of a grown model: its graph's nodes in order, gated blocks as units.

A plan is a list of steps. A plain step runs one layer's compact executor; a block step runs a
gated block (METHOD.md §1.1, Eq. 2): its branch F is a nested plan computed only when the gate is
on (`tfgrow.compact.run_if_on`), and the block's output is `x + m F(x)` (residual) or
`m F(x) + (1 - m) x` (plain). Without a gate in the context (the full network) a block step
computes exactly what the original layers compute.
"""

import dataclasses

import keras
import tensorflow as tf

import tfgrow.growing.executors as executors
from tfgrow.compact import run_if_on
from tfgrow.graph.nodes import nodes_in_order
from tfgrow.precision import cast_like


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """What the executor of one layer needs to know about its node.

    Attributes:
        name: the layer's name.
        layer: the Keras layer.
        input_names: the layers whose outputs it reads, in call order.
        input_layouts: the layouts of those inputs.
        output_layout: the layout of its output.
        output_shape: the output's static shape.
        applies_mask: a producer whose output is not read by a batch norm alone multiplies it
            by its mask values.
        block: the innermost gated block whose branch holds the layer, or None.
    """

    name: str
    layer: object
    input_names: tuple
    input_layouts: tuple
    output_layout: tuple
    output_shape: tuple
    applies_mask: bool
    block: str | None


@dataclasses.dataclass
class Step:
    """One plan step: a node (`block` None) or a gated block with its branch's `body` plan."""

    name: str
    spec: NodeSpec | None = None
    block: object = None
    body: list = dataclasses.field(default_factory=list)


def node_specs(model, graph, blocks):
    """NodeSpec of every layer, in graph order."""
    consumers = {}
    ordered = nodes_in_order(model)
    for layer, node in ordered:
        for tensor in node.input_tensors:
            consumers.setdefault(tensor._keras_history.operation.name, []).append(layer)
    enclosing = {}
    # Outer blocks first, so an inner block's name wins for its own layers.
    for block in sorted(blocks, key=lambda b: -len(b.branch_layers)):
        if block.gated:
            for name in block.branch_layers:
                enclosing[name] = block.name
    specs = []
    for layer, node in ordered:
        inputs = tuple(t._keras_history.operation.name for t in node.input_tensors)
        readers = consumers.get(layer.name, [])
        read_by_batch_norm = len(readers) == 1 and isinstance(
            readers[0], keras.layers.BatchNormalization
        )
        specs.append(
            NodeSpec(
                name=layer.name,
                layer=layer,
                input_names=inputs,
                input_layouts=tuple(graph.output_layouts[name] for name in inputs),
                output_layout=graph.output_layouts[layer.name],
                output_shape=tuple(node.outputs[0].shape),
                applies_mask=executors.is_producer(layer) and not read_by_batch_norm,
                block=enclosing.get(layer.name),
            )
        )
    return specs


def build_plan(specs, blocks):
    """The plan of `specs` (in graph order) with every gated block of `blocks` as one step."""
    gated = [block for block in blocks if block.gated]
    # Model inputs are fed, not computed.
    computed = [spec for spec in specs if not isinstance(spec.layer, keras.layers.InputLayer)]
    return _plan(computed, gated)


def _plan(specs, blocks):
    names = {spec.name for spec in specs}
    inside = [b for b in blocks if set(b.branch_layers) <= names]
    # Top-level blocks: not inside another block's branch.
    top = [
        b
        for b in inside
        if not any(b is not o and set(b.branch_layers) < set(o.branch_layers) for o in inside)
    ]
    claimed = {name: block for block in top for name in block.branch_layers}
    by_output = {block.output_layer: block for block in top}
    steps = []
    for spec in specs:
        if spec.name in by_output:
            block = by_output[spec.name]
            body_specs = [s for s in specs if s.name in set(block.branch_layers)]
            branch = set(block.branch_layers)
            rest = [b for b in inside if b is not block and set(b.branch_layers) < branch]
            body = _plan(body_specs, rest)
            steps.append(Step(spec.name, spec=spec, block=block, body=body))
        elif spec.name not in claimed:
            steps.append(Step(spec.name, spec=spec))
    return steps


def run(steps, values, sets, context):
    """Runs `steps`, writing each output into `values` (layer name -> compact tensor)."""
    for step in steps:
        if step.block is None:
            spec = step.spec
            inputs = [values[name] for name in spec.input_names]
            values[step.name] = executors.execute(spec.layer, inputs, sets, spec, context)
        else:
            values[step.name] = _run_block(step, values, sets, context)


def _run_block(step, values, sets, context):
    block = step.block
    x = values[block.input_layer]

    def branch(inputs, branch_context):
        local = dict(values)
        local[block.input_layer] = inputs
        run(step.body, local, sets, branch_context)
        return local[block.branch_end]

    gate = context.gate(block.name)
    if gate is None:
        if block.kind == "plain":
            return branch(x, context)
        # The Add itself, on its inputs in their original order.
        local = dict(values)
        local[block.branch_end] = branch(x, context)
        inputs = [local[name] for name in step.spec.input_names]
        return executors.execute(step.spec.layer, inputs, sets, step.spec, context)
    body = run_if_on(branch, x, gate.on, context)
    value = tf.where(gate.on, gate.value, tf.zeros_like(gate.value))
    value = cast_like(value, body)  # float32 gate, activations in the policy's compute dtype
    if block.kind == "plain":
        return value * body + (1.0 - value) * x
    return x + value * body
