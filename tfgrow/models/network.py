"""GrowingNetwork: a sequence of growable layers plus the mask groups they obey.

The network owns every `MaskGroup` (channel groups and block gates), so its state is checkpointed
and distributed with the model. It produces the three kinds of `ExecutionContext` a run needs:

- `sample_context`: the sub-network sampled for one training step (METHOD.md §1.2);
- `deterministic_context`: H(s), with mask values sigma(beta s) on the kept structures (§1.6);
- `full_context`: every structure on, unmasked (the full network, and the "full" baseline).
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfgrow import cost as cost_lib
from tfgrow.execution import ExecutionContext
from tfgrow.layers.blocks import GrowableBlock
from tfgrow.masks import (
    ActiveSet,
    Gate,
    MaskGroup,
    Temperature,
    active_set,
    capacity_ladder,
    capacity_set,
    choose_capacity,
    count_bound,
    fold_in,
    sample_fixed,
    sample_mask,
)


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowingNetwork(keras.Model):
    """A network of growable layers, executed on the active channels and blocks only.

    Args:
        layers: ordered growable layers (GrowableConv2D, GrowableBlock, Pool2D, GrowableDense);
            each is called as `layer(x, context=context)`.
        groups: the channel `MaskGroup`s the layers name; gates are created for gated blocks.
        input_shape: (H, W, C) of the input images.
        growing: False builds the plain full network: no sampling, every structure on.
        seed_blocks_on: gated blocks that start on (METHOD.md §1.5: none; the first block of a
            stage is ungated and always on).
    """

    def __init__(self, layers, groups, input_shape, growing=True, channel_multiple=1, **kwargs):
        super().__init__(**kwargs)
        self.channel_multiple = int(channel_multiple)
        self.layer_sequence = list(layers)
        self.growing = growing
        self.input_spec_shape = tuple(int(d) for d in input_shape)
        self.channel_groups = {group.name: group for group in groups}
        gated = [layer for layer in self.layer_sequence if isinstance(layer, GrowableBlock)]
        self.gate_groups = {
            block.name: MaskGroup(1, kind="layer", num_on=0, name=block.name + "_gate")
            for block in gated
            if block.gated
        }
        self._build_all()

    # ----------------------------------------------------------------- structure
    def _build_all(self):
        for group in list(self.channel_groups.values()) + list(self.gate_groups.values()):
            group.build()
        height, width, channels = self.input_spec_shape
        shape = (None, height, width, channels)
        costs = []
        for layer in self.layer_sequence:
            if not layer.built:
                layer.build(shape)
            if hasattr(layer, "layer_costs"):
                costs += layer.layer_costs(height, width)
            height, width = layer.output_spatial(height, width)
            shape = self._output_shape(layer, shape, height, width)
        self.layer_costs = costs
        for name, cost in ((c.output_group, c) for c in costs):
            if name is not None and name not in self.channel_groups:
                raise ValueError(f"Layer {cost.name!r} names an unknown channel group {name!r}")
        self.built = True

    @staticmethod
    def _conv_layers_of(layer):
        if isinstance(layer, GrowableBlock):
            return layer.conv_layers()
        return [layer] if hasattr(layer, "layer_cost") else []

    @staticmethod
    def _output_shape(layer, shape, height, width):
        if hasattr(layer, "filters"):
            return (None, height, width, layer.filters)
        if hasattr(layer, "units"):
            return (None, layer.units)
        if getattr(layer, "kind", None) == "global_average":
            return (None, shape[-1])
        return (None, height, width, shape[-1])

    def groups_parent(self):
        """Channel group -> enclosing gate name (None when not inside a gated block)."""
        parents = {name: None for name in self.channel_groups}
        for layer in self.layer_sequence:
            if isinstance(layer, GrowableBlock) and layer.gated:
                parents[layer.inner_group] = layer.name
        return parents

    # ----------------------------------------------------------------- execution
    def call(self, inputs, training=False):
        """Inference at H(s) (the architecture the run would return now).

        With `training=True` (Keras `fit`) or once a `GrowingCallback` has attached its settings,
        `tfgrow.train.callback.network_call` runs the pass: a sampled training step, or H(s) at
        the run's temperatures.
        """
        if training or self.fit_settings is not None:
            from tfgrow.train import callback  # imported here: tfgrow.train imports models

            return callback.network_call(self, inputs, training)
        context = self.deterministic_context(self._current_temperature, self._current_epoch)
        return self.forward(inputs, context)

    _current_temperature = None
    _current_epoch = 0.0
    # The random baseline (tfgrow.baselines.random_sampling): every structure is drawn with this
    # probability and carries mask value 1; None samples from the logits (METHOD.md §1.2).
    fixed_probability = None
    fit_settings = None  # set by GrowingCallback (tfgrow/train/callback.py)

    def forward(self, inputs, context):
        self.check_input_shape(inputs)
        x = inputs
        for layer in self.layer_sequence:
            x = layer(x, context=context)
        return x

    def check_input_shape(self, inputs):
        """Raises ValueError unless `inputs` is a batch of the images this network was built for.

        A network built for 28x28x1 would otherwise run on 32x32x1 images (its convolutions and
        global pooling accept any size) and return a wrong result without a word.
        """
        shape = tuple(inputs.shape)
        expected = (None, *self.input_spec_shape)
        known = [(got, want) for got, want in zip(shape[1:], expected[1:]) if got is not None]
        if len(shape) == len(expected) and all(got == want for got, want in known):
            return
        raise ValueError(
            f"Expected images of shape (batch, {', '.join(map(str, self.input_spec_shape))}), "
            f"the shape {self.name} was built for. Received: inputs of shape {shape}. Fix: "
            "resize the images, or build the network for them (the builder's input_shape)."
        )

    def _probabilities(self, group, temperature, epoch):
        if self.fixed_probability is not None:
            return tf.ones_like(tf.convert_to_tensor(group.logits))
        if temperature is None:
            return tf.sigmoid(tf.convert_to_tensor(group.logits))
        return group.probabilities(temperature, epoch)

    def full_context(self, training=False, sync_batch_norm=False):
        return ExecutionContext(training=training, sync_batch_norm=sync_batch_norm)

    def deterministic_context(self, temperature, epoch, training=False, capacities=None):
        """H(s): kept structures with mask value sigma(beta s); off blocks are skipped.

        `capacities` (group -> Python int, e.g. from `capacities_for_architecture`) runs each
        listed group at that static width (XLA); it must hold H(s), or structures are dropped.
        """
        if not self.growing:
            return self.full_context(training)
        context = ExecutionContext(
            training=training,
            static_shapes=capacities is not None,
            channel_multiple=self.channel_multiple,
        )
        for name, group in self.channel_groups.items():
            values = self._probabilities(group, temperature, epoch)
            context.channels[name] = self._active_set(
                context, name, group.deterministic_keep(), values, values, capacities
            )
        for name, group in self.gate_groups.items():
            values = self._probabilities(group, temperature, epoch)
            context.gates[name] = Gate(group.deterministic_keep()[0], values[0])
        return context

    def sample_context(
        self,
        seed,
        temperature,
        epoch,
        relaxation="sigmoid",
        sync_batch_norm=False,
        capacities=None,
    ):
        """Samples q for every group with a stateless `seed` ([2] int32) for one training step.

        `capacities` (group -> Python int) runs each listed group at exactly that many slots:
        static shapes for XLA. A draw of more structures keeps the most probable ones and
        records the number dropped in `context.overflows`.
        """
        context = ExecutionContext(
            training=True,
            sync_batch_norm=sync_batch_norm,
            static_shapes=capacities is not None,
            channel_multiple=self.channel_multiple,
        )
        if not self.growing:
            return context
        for index, (name, group) in enumerate(self._all_groups()):
            group_seed = fold_in(seed, index)
            beta = temperature.beta(tf.convert_to_tensor(group.counters), epoch)
            at_least_one = group.kind == "channel"
            if self.fixed_probability is None:
                q, relaxed = sample_mask(group.logits, beta, group_seed, relaxation, at_least_one)
            else:
                q, relaxed = sample_fixed(
                    group.logits, self.fixed_probability, group_seed, at_least_one
                )
            if group.kind == "layer":
                context.gates[name] = Gate(q[0], relaxed[0])
            else:
                priority = tf.sigmoid(beta * tf.convert_to_tensor(group.logits))
                context.channels[name] = self._active_set(
                    context, name, q, relaxed, priority, capacities
                )
        return context

    def _active_set(self, context, name, keep, values, priority, capacities):
        if capacities is None or name not in capacities:
            return active_set(keep, values, self.channel_multiple)
        active, dropped = capacity_set(keep, values, priority, capacities[name])
        context.overflows[name] = dropped
        return active

    def capacity_ladders(self):
        """Group -> the static widths it may run at (`masks.capacity_ladder`)."""
        return {
            name: capacity_ladder(group.size, self.channel_multiple)
            for name, group in self.channel_groups.items()
        }

    def capacities_for(self, needs):
        """Group -> smallest ladder rung holding `needs[group]` structures (Python ints)."""
        ladders = self.capacity_ladders()
        return {name: choose_capacity(ladders[name], needs[name]) for name in ladders}

    def _sampling_probabilities(self, group, temperature, epoch):
        """The probability each structure of `group` is drawn in a training step (numpy)."""
        if self.fixed_probability is not None:
            return np.full([group.size], self.fixed_probability)
        return group.probabilities(temperature, epoch).numpy()

    def sampling_bounds(self, temperature, epoch, sigmas=4.0):
        """Group -> a high quantile of the number of structures a step draws now (host)."""
        return {
            name: count_bound(self._sampling_probabilities(group, temperature, epoch), sigmas)
            for name, group in self.channel_groups.items()
        }

    def _all_groups(self):
        items = list(self.channel_groups.items())
        items += [(name, group) for name, group in self.gate_groups.items()]
        return items

    def dense_equivalent(self, context):
        """The same sampled masks executed at full width: masked-out channels carry value 0.

        Used by tests: compact and dense execution of one context must agree in outputs and in
        gradients (DESIGN.md, "one code path serves every mode").
        """
        dense = ExecutionContext(training=context.training, sync_batch_norm=context.sync_batch_norm)
        for name, active in context.channels.items():
            size = self.channel_groups[name].size
            values = tf.scatter_nd(active.indices[:, None], active.values, [size])
            dense.channels[name] = ActiveSet(tf.range(size), values, tf.ones([size]))
        for name, gate in context.gates.items():
            dense.gates[name] = Gate(
                tf.constant(True), tf.where(gate.on, gate.value, tf.zeros_like(gate.value))
            )
        return dense

    # ----------------------------------------------------------------- bookkeeping
    def gate_on(self, context, block):
        gate = context.gate(block)
        return 1.0 if gate is None else tf.cast(gate.on, tf.float32)

    def gather_kernel_rows(self, context):
        """[`KernelRows`] of every kernel whose input runs below full width in `context`.

        Call inside the gradient tape, before `forward`: the pass then uses these rows, and the
        training step updates them compactly (DESIGN.md, "Compact execution": the update costs
        what the sub-network's weights cost, not passes over the maximal network's).
        """
        result = []
        for layer in self.layer_sequence:
            for conv in self._conv_layers_of(layer):
                rows = conv.gather_kernel_rows(context, self.gate_on(context, conv.block))
                if rows is not None:
                    result.append(rows)
        return result

    def weight_masks(self, context):
        """id(variable) -> 0/1 mask of entries computed in this pass; absent means all."""
        masks = {}
        for layer in self.layer_sequence:
            for conv in self._conv_layers_of(layer):
                on = self.gate_on(context, conv.block)
                layer_masks = conv.weight_masks(context)
                if conv.block is not None and context.gate(conv.block) is not None:
                    variables = [conv.kernel] + [
                        v
                        for v in (
                            conv.bias,
                            getattr(conv, "gamma", None),
                            getattr(conv, "beta", None),
                        )
                        if v is not None
                    ]
                    for variable in variables:
                        base = layer_masks.get(id(variable), tf.ones(variable.shape))
                        layer_masks[id(variable)] = base * on
                masks.update(layer_masks)
        return masks

    def active_structures(self, context):
        """Group name -> float 0/1 vector of structures active in this pass, with layer priority.

        These are the structures whose counters u advance (METHOD.md §1.4).
        """
        parents = self.groups_parent()
        result = {}
        for name, group in self.channel_groups.items():
            active = context.active(name)
            mask = tf.ones([group.size]) if active.mask is None else active.mask
            result[name] = mask * self.gate_on(context, parents[name])
        for block, gate in self.gate_groups.items():
            result[gate.name] = tf.reshape(self.gate_on(context, block), [1])
        return result

    def group_variables(self):
        """MaskGroup name -> MaskGroup, channel groups and block gates (`<block>_gate`)."""
        return {group.name: group for _, group in self._all_groups()}

    def widths_and_blocks(self, context):
        """(group -> active width, block -> 0/1) of the network a context runs (tensors)."""
        widths = {}
        for name, group in self.channel_groups.items():
            active = context.active(name)
            # Sampled structures, not the zero-valued padding computed beside them.
            widths[name] = group.size if active.is_full else tf.reduce_sum(active.mask)
        blocks = {name: self.gate_on(context, name) for name in self.gate_groups}
        return widths, blocks

    def deterministic_widths_and_blocks(self):
        """(group -> width, block -> 0/1) of H(s) as tensors, without building active sets."""
        widths = {
            name: tf.reduce_sum(tf.cast(group.deterministic_keep(), tf.int32))
            for name, group in self.channel_groups.items()
        }
        blocks = {
            name: tf.cast(group.deterministic_keep()[0], tf.float32)
            for name, group in self.gate_groups.items()
        }
        return widths, blocks

    def architecture(self):
        """H(s) as Python ints: (group -> width, block -> 0/1)."""
        context = self.deterministic_context(None, 0.0)
        widths, blocks = self.widths_and_blocks(context)
        return (
            {name: int(value) for name, value in widths.items()},
            {name: int(np.round(float(value))) for name, value in blocks.items()},
        )

    def all_block_names(self):
        return [layer.name for layer in self.layer_sequence if isinstance(layer, GrowableBlock)]

    def full_cost(self):
        return cost_lib.count(self.layer_costs, cost_lib.full_widths(self.layer_costs), {})

    def mask_penalty(self, temperature, epoch):
        """(channel term, layer term): the expected numbers of channel and layer structures.

        A structure's term is sigma(beta s); a channel inside a gated block exists only while its
        block does (layer priority, METHOD.md §1.1), so its term is sigma(beta_l s_l) *
        sigma(beta_j s_j), as the budget's H(s) counts it only while the block is on. With a
        plain sum, lambda_c < 0 grew the channels of blocks that were off (they cost nothing in
        H(s)) to full width, every block then turned on at full width, and Basic3ResNet
        overshot a 35% params target to 40.5% within 2 of 4 epochs (README, "Method choices").
        The product also moves a block's gate by lambda_c times its expected width.
        """
        parents = self.groups_parent()
        channel_terms = []
        for name, group in self.channel_groups.items():
            term = tf.reduce_sum(group.probabilities(temperature, epoch))
            if parents[name] is not None:
                gate = self.gate_groups[parents[name]]
                term = term * tf.reduce_sum(gate.probabilities(temperature, epoch))
            channel_terms.append(term)
        layer_terms = [
            tf.reduce_sum(g.probabilities(temperature, epoch)) for g in self.gate_groups.values()
        ]
        channel_total = tf.add_n(channel_terms) if channel_terms else tf.constant(0.0)
        return channel_total, tf.add_n(layer_terms) if layer_terms else tf.constant(0.0)

    def mask_variables(self):
        return [g.logits for _, g in self._all_groups()]

    def weight_variables(self):
        """Trainable weights other than mask logits."""
        logit_ids = {id(v) for v in self.mask_variables()}
        return [v for v in self.trainable_variables if id(v) not in logit_ids]

    # ----------------------------------------------------------------- serialisation
    def get_config(self):
        """Layers and groups as nested Keras configs, so `keras.models.load_model` rebuilds it."""
        temperature = self._current_temperature
        return {
            "name": self.name,
            "layers": [keras.saving.serialize_keras_object(x) for x in self.layer_sequence],
            "groups": [
                keras.saving.serialize_keras_object(g) for g in self.channel_groups.values()
            ],
            "input_shape": list(self.input_spec_shape),
            "growing": self.growing,
            "channel_multiple": self.channel_multiple,
            "temperature": None if temperature is None else dataclasses.asdict(temperature),
            "epoch": float(self._current_epoch),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        temperature = config.pop("temperature", None)
        epoch = config.pop("epoch", 0.0)
        for key in ("layers", "groups"):
            # Unbuilt: the network builds its layers and groups itself, once, in __init__.
            config[key] = [
                keras.saving.deserialize_keras_object(
                    {k: v for k, v in item.items() if k != "build_config"},
                    custom_objects=custom_objects,
                )
                for item in config[key]
            ]
        network = cls(**config)
        if temperature is not None:
            network._current_temperature = Temperature(**temperature)
        network._current_epoch = float(epoch)
        return network
