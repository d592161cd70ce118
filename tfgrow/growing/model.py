"""GrowingModel: any Keras functional model, grown by structured continuous sparsification.

The model holds the original model's layers at full size (the maximal network) and one
`MaskGroup` per prunable channel group of the graph analysis (`tfgrow.graph.analysis`; residual
ties share one group because the analysis merges them), plus one gate per gated block
(`tfgrow.graph.blocks`). Every channel group starts with one channel on and every gated block
off (METHOD.md §1.5; the first block of every stage has no gate and always exists). It runs
compactly on the active channels (`tfgrow.growing.plan`) and speaks the protocol the trainer,
the launcher loop and `GrowingCallback` use.
"""

import dataclasses

import keras
import tensorflow as tf

import tfgrow.growing.costs as costs_lib
import tfgrow.growing.plan as plan_lib
import tfgrow.growing.recurrent as recurrent_lib
from tfgrow.compact import KernelRows, gather_rows
from tfgrow.graph.analysis import analyze
from tfgrow.graph.blocks import find_blocks
from tfgrow.graph.recurrent import RECURRENT, SEQUENCE_PRODUCERS
from tfgrow.growing.executors import kernels_of
from tfgrow.growing.layouts import LayoutSets
from tfgrow.growing.structures import MaskedStructures, pop_inference_config
from tfgrow.masks import MaskGroup
from tfgrow.precision import to_float32

L = keras.layers


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowingModel(MaskedStructures, keras.Model):
    """A Keras functional model whose channels (and blocks) are grown and pruned in training.

    Build it with `tfgrow.grow(model)`.

    Args:
        model: a functional `keras.Model` of stock layers (its weights are the maximal
            network's initial weights).
        plain_blocks: `(input_layer_name, output_layer_name)` pairs declaring plain blocks
            `m F(x) + (1 - m) x` (same shape in and out); their input and output channels
            become one group.
        grow_layers: give gated blocks (identity residual blocks after the first of their
            stream, and declared plain blocks) a learned layer mask.
        growing: False runs the full network: no sampling, every structure on.
        channel_multiple: round computed widths up to this multiple (`masks.active_set`).
        logit_on, logit_off: initial logits of seed and other structures (METHOD.md §1.5).
        fixed_layers: names of layers whose output channels keep their full width.
    """

    def __init__(
        self,
        model,
        plain_blocks=(),
        grow_layers=True,
        growing=True,
        channel_multiple=1,
        logit_on=3.0,
        logit_off=-3.0,
        fixed_layers=(),
        **kwargs,
    ):
        kwargs.setdefault("name", model.name)
        super().__init__(**kwargs)
        self.source = model
        self.plain_blocks = tuple(tuple(pair) for pair in plain_blocks)
        self.grow_layers = bool(grow_layers)
        self.growing = growing
        self.channel_multiple = int(channel_multiple)
        self.logit_on, self.logit_off = float(logit_on), float(logit_off)
        self.fixed_layers = tuple(fixed_layers)
        declared = self.plain_blocks if self.grow_layers else ()
        # A conv/dense output grows with or without a batch norm after it: the executors
        # multiply a producer's output by its mask values where no batch norm reads it.
        self.graph = analyze(
            model, tied_layers=declared, gamma_required=False, fixed_layers=self.fixed_layers
        )
        blocks = find_blocks(model, declared)
        if not self.grow_layers:
            blocks = [dataclasses.replace(block, gated=False) for block in blocks]
        self.blocks = blocks
        self.channel_groups = {
            self.graph.group_names[g]: MaskGroup(
                int(self.graph.group_sizes[g]),
                num_on=1,
                logit_on=logit_on,
                logit_off=logit_off,
                name=self.graph.group_names[g],
            )
            for g in range(self.graph.num_groups)
            if not self.graph.fixed[g]
        }
        self.gate_groups = {
            block.name: MaskGroup(
                1,
                kind="layer",
                num_on=0,
                logit_on=logit_on,
                logit_off=logit_off,
                name=block.name + "_gate",
            )
            for block in blocks
            if block.gated
        }
        if growing and not self.channel_groups and not self.gate_groups:
            raise ValueError(_nothing_to_grow(model, self.graph))
        # An LSTM's mask value multiplies its cell state too: it cannot be folded into a stock
        # LSTM's weights, so H(s) runs its kept units at value 1 (`inference_values`).
        self.unit_valued_groups = frozenset(
            name for name in self.channel_groups if isinstance(model.get_layer(name), RECURRENT)
        )
        for group in list(self.channel_groups.values()) + list(self.gate_groups.values()):
            group.build()
        self.specs = plan_lib.node_specs(model, self.graph, blocks)
        self.plan = plan_lib.build_plan(self.specs, blocks)
        enclosing = {spec.name: spec.block for spec in self.specs if spec.block is not None}
        self.layer_costs = costs_lib.layer_costs(
            model, self.graph, set(self.channel_groups), enclosing
        )
        self.input_names = [t._keras_history.operation.name for t in model.inputs]
        self.output_names = [t._keras_history.operation.name for t in model.outputs]
        self.input_spec_shape = tuple(model.inputs[0].shape[1:])
        # Stateful LSTMs/GRUs keep one state per row: every batch has the model's fixed size.
        stateful = any(isinstance(layer, RECURRENT) and layer.stateful for layer in model.layers)
        self.stateful_batch_size = model.inputs[0].shape[0] if stateful else None
        self.built = True

    # ----------------------------------------------------------------- structure
    def groups_parent(self):
        """Channel group -> the gated block whose branch holds all its layers (or None)."""
        blocks_of = {name: set() for name in self.channel_groups}
        for spec in self.specs:
            for g in set(spec.output_layout):
                name = self.graph.group_names[g]
                if name in blocks_of:
                    blocks_of[name].add(spec.block)
        return {
            name: next(iter(owners)) if len(owners) == 1 else None
            for name, owners in blocks_of.items()
        }

    def all_block_names(self):
        return [block.name for block in self.blocks]

    def _sets(self, context):
        return LayoutSets(self.graph.group_names, self.graph.group_sizes, context)

    # ----------------------------------------------------------------- execution
    def forward(self, inputs, context):
        """The model's outputs computed on the active channels and blocks of `context`."""
        inputs = inputs if isinstance(inputs, list | tuple) else [inputs]
        self.check_input_shape(inputs)
        if self.stateful_batch_size is not None:
            inputs = [self._checked_batch(x) for x in inputs]
        values = {
            name: _as_input(x, self.compute_dtype) for name, x in zip(self.input_names, inputs)
        }
        plan_lib.run(self.plan, values, self._sets(context), context)
        # Float32 outputs under a mixed policy: the loss and softmax stay float32.
        outputs = [to_float32(values[name]) for name in self.output_names]
        return outputs[0] if len(outputs) == 1 else outputs

    def check_input_shape(self, inputs):
        """Raises ValueError unless every input has the shape its source model was built for.

        Convolutions and global pooling take any size: a ResNet built for 28x28x1 images would
        otherwise run on 32x32x1 ones and return a wrong result without a word. Dimensions the
        source model leaves open (None) take any size; the batch dimension is not checked here.
        """
        for x, source_input in zip(inputs, self.source.inputs):
            if isinstance(x.shape, tf.TensorShape) and x.shape.rank is None:
                continue
            shape, expected = tuple(x.shape), tuple(source_input.shape[1:])
            same = len(shape) == len(expected) + 1 and all(
                got is None or want is None or got == want for got, want in zip(shape[1:], expected)
            )
            if same:
                continue
            kind = "images" if len(expected) == 3 else "inputs"
            raise ValueError(
                f"Expected {kind} of shape (batch, {', '.join(map(str, expected))}), the shape "
                f"{self.name} was built for. Received: inputs of shape {shape}. Fix: resize the "
                f"{kind}, or build the model for them (the builder's input_shape)."
            )

    def _checked_batch(self, x):
        """`x` after checking it has the stateful layers' fixed batch size (statically when the
        shape is known, else by an assertion the pass depends on)."""
        batch = self.stateful_batch_size
        message = (
            f"Expected batches of {batch} rows: the stateful layers of {self.name!r} keep one "
            "state per row of their fixed batch. Received: a batch of {}. Fix: batches of "
            f"exactly {batch} rows (fit(..., batch_size={batch}) on a multiple of {batch} "
            "examples, or a tf.data dataset batched with drop_remainder=True)."
        )
        rows = x.shape[0]
        if rows is not None:
            if rows != batch:
                raise ValueError(message.format(rows))
            return x
        check = tf.debugging.assert_equal(
            tf.shape(x)[0], batch, message=message.format("another size")
        )
        with tf.control_dependencies([check]):
            return tf.identity(x)

    def _weighted_specs(self):
        return [spec for spec in self.specs if kernels_of(spec.layer)]

    def gather_kernel_rows(self, context):
        """[`KernelRows`] of every kernel whose input runs below full width in `context`.

        Call inside the gradient tape, before `forward`: the pass then uses these rows, and the
        training step updates them compactly (`MaskedMomentum.row_step`).
        """
        sets = self._sets(context)
        result = []
        for spec in self._weighted_specs():
            on = self.gate_on(context, spec.block)
            for kernel in kernels_of(spec.layer):
                inputs = sets(kernel.row_layout(spec))
                if inputs.known_complete:  # read whole; `weight_masks` masks its update
                    continue
                rows = gather_rows(kernel.variable, inputs.indices, kernel.axis)
                context.kernel_rows[id(kernel.variable)] = rows
                out_mask = _columns_mask(sets, spec, kernel)
                mask = tf.gather(inputs.mask, inputs.indices)[:, None] * out_mask[None, :] * on
                result.append(KernelRows(kernel.variable, kernel.axis, inputs.indices, rows, mask))
        return result

    def weight_masks(self, context):
        """id(variable) -> 0/1 mask of entries computed in this pass; absent means all."""
        sets = self._sets(context)
        masks = {}
        for spec in self.specs:
            layer = spec.layer
            gate = context.gate(spec.block)
            in_full = not spec.input_layouts or sets(spec.input_layouts[0]).is_full
            if gate is None and in_full and sets(spec.output_layout).is_full:
                continue
            on = self.gate_on(context, spec.block)
            out_mask = sets.mask(spec.output_layout) * on
            for kernel in kernels_of(layer):
                in_mask = sets.mask(kernel.row_layout(spec))
                columns = _columns_mask(sets, spec, kernel) * on
                mask = in_mask[:, None] * columns[None, :]
                masks[id(kernel.variable)] = tf.reshape(
                    mask, [1] * kernel.axis + mask.shape.as_list()
                )
            if isinstance(layer, SEQUENCE_PRODUCERS):
                masks.update(recurrent_lib.vector_masks(layer, out_mask))
                continue
            vectors = [getattr(layer, "bias", None) if getattr(layer, "use_bias", False) else None]
            if isinstance(layer, L.BatchNormalization):
                vectors = [
                    layer.gamma if layer.scale else None,
                    layer.beta if layer.center else None,
                ]
            for variable in vectors:
                if variable is not None:
                    masks[id(variable)] = out_mask
        return masks

    # ----------------------------------------------------------------- serialisation
    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.source),
            "plain_blocks": [list(pair) for pair in self.plain_blocks],
            "grow_layers": self.grow_layers,
            "growing": self.growing,
            "channel_multiple": self.channel_multiple,
            "logit_on": self.logit_on,
            "logit_off": self.logit_off,
            "fixed_layers": list(self.fixed_layers),
            **self.inference_config(),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inference = pop_inference_config(config)
        config["model"] = keras.saving.deserialize_keras_object(
            config["model"], custom_objects=custom_objects
        )
        model = cls(**config)
        model.set_inference_config(inference)
        return model


def _columns_mask(sets, spec, kernel):
    """0/1 over a kernel's output axis: the output layout's mask (once per gate block), or one
    entry for a depthwise kernel."""
    if not kernel.has_output_axis:
        return tf.ones([1])
    return tf.tile(sets.mask(spec.output_layout), [kernel.gates])


def _as_input(x, dtype):
    """A model input as a tensor: floating inputs in the compute dtype, token ids as they are."""
    x = tf.convert_to_tensor(x)
    return tf.cast(x, dtype) if x.dtype.is_floating else x


def _nothing_to_grow(model, graph):
    """The message for a model in which every channel group is fixed and no block is gated."""
    reasons = "; ".join(f"{name}: {why}" for name, why in sorted(graph.fixed_groups.items()))
    return (
        f"tfgrow.grow found nothing to grow in model {model.name!r}: every channel group keeps "
        f"its full width ({reasons or 'no channel groups'}) and no block has a layer gate. "
        "Expected at least one Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, LSTM or GRU "
        "output that is not the model's output. Fix: grow a model with hidden layers, or "
        "train this one as it is (growing=False, the 'full' method)."
    )
