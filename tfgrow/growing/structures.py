"""The mask groups of a growing network and everything computed from them alone.

A growing network (`GrowingModel`, from `tfgrow.grow`) owns one `MaskGroup` per channel group
(`channel_groups`) and one per gated block (`gate_groups`). This mixin turns them into the three
kinds of `ExecutionContext` a run needs:

- `sample_context`: the sub-network sampled for one training step (METHOD.md §1.2);
- `deterministic_context`: H(s), with mask values sigma(beta s) on the kept structures (§1.6);
- `full_context`: every structure on, unmasked (the full network, and the "full" baseline);

and into counts (widths, blocks, costs through `tfgrow.cost`), penalties and counters. A class
using it defines `channel_groups`, `gate_groups`, `growing`, `channel_multiple`, `layer_costs`,
`groups_parent()` and `forward(inputs, context)`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

import tfgrow.cost as cost_lib
from tfgrow.execution import ExecutionContext
from tfgrow.growing.update import assign_all, keras_step
from tfgrow.masks import (
    ActiveSet,
    Gate,
    Temperature,
    active_set,
    capacity_ladder,
    capacity_set,
    choose_capacity,
    count_bound,
    keep_at_least_one,
    sample_fixed,
    sample_mask,
)


def pop_inference_config(config):
    """Removes and returns the inference settings `inference_config` put in a model config."""
    return {"temperature": config.pop("temperature", None), "epoch": config.pop("epoch", 0.0)}


class MaskedStructures:
    """Contexts, counts, penalties and counters of a network's mask groups (a mixin)."""

    def call(self, inputs, training=False):
        """Inference at H(s) (the architecture the run would return now), or a training pass.

        With `training=True` (Keras `fit`): a growing network runs the sampled pass of the
        `GrowthUpdate` a `GrowingCallback` attached (`growth_update`); a full network runs at
        full width and updates its BN statistics.
        """
        if not training:
            temperature, epoch = self.inference_settings()
            return self.forward(inputs, self.deterministic_context(temperature, epoch))
        if not self.growing:
            context = self.full_context(training=True, sync_batch_norm=True)
            outputs = self.forward(inputs, context)
            assign_all(context.state_updates)
            return outputs
        if self.growth_update is None:
            raise ValueError(
                f"Expected a GrowingCallback among the callbacks to train the growing network "
                f"{self.name!r} (it sets the temperatures, the budget and the sampling seed). "
                "Received: a training call without one. Use "
                "model.fit(..., callbacks=[tfgrow.train.callback.GrowingCallback(...)])."
            )
        return self.growth_update.keras_training_call(self, inputs)

    def inference_settings(self):
        """(temperature, epoch) of inference: the attached `growth_update`'s at the optimizer's
        step while there is one, else those saved with the model (temperature None: beta = 1)."""
        update = self.growth_update
        if update is None:
            return self._current_temperature, self._current_epoch
        return update.temperature, update.epoch(keras_step(self))

    def inference_config(self):
        """The temperatures `call` uses, for `get_config` (they travel with `model.save`)."""
        temperature, epoch = self.inference_settings()
        return {
            "temperature": None if temperature is None else dataclasses.asdict(temperature),
            "epoch": float(epoch),
        }

    def set_inference_config(self, inference):
        if inference["temperature"] is not None:
            self._current_temperature = Temperature(**inference["temperature"])
        self._current_epoch = float(inference["epoch"])

    _current_temperature = None
    _current_epoch = 0.0
    # A `tfgrow.growing.update.GrowthUpdate`, attached by GrowingCallback (model.fit).
    growth_update = None
    # The random baseline (tfgrow.baselines.random_sampling): every structure is drawn with this
    # probability and carries mask value 1; None samples from the logits (METHOD.md §1.2).
    fixed_probability = None

    def _probabilities(self, group, temperature, epoch):
        if self.fixed_probability is not None:
            return tf.ones_like(tf.convert_to_tensor(group.logits))
        if temperature is None:
            return tf.sigmoid(tf.convert_to_tensor(group.logits))
        return group.probabilities(temperature, epoch)

    # Channel groups whose kept structures carry mask value 1 in H(s) (`inference_values`).
    unit_valued_groups = frozenset()

    def inference_values(self, name, group, temperature, epoch):
        """The mask values of group `name` in H(s): sigma(beta s) (METHOD.md §1.6), or 1 for
        the `unit_valued_groups`: the hidden units of an LSTM/GRU, whose mask value multiplies
        the recurrent state (METHOD.md §1.8) and so cannot be folded into a stock layer's
        weights at export; at the end of a run sigma(beta s) is close to 1 there anyway (beta
        about 200)."""
        if name in self.unit_valued_groups:
            return tf.ones([group.size])
        return self._probabilities(group, temperature, epoch)

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
            values = self.inference_values(name, group, temperature, epoch)
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
        groups = self._all_groups()
        sizes = [group.size for _, group in groups]
        logits = tf.concat([tf.convert_to_tensor(group.logits) for _, group in groups], 0)
        counters = tf.concat([tf.convert_to_tensor(group.counters) for _, group in groups], 0)
        beta = temperature.beta(counters, epoch)
        # One draw over every group's structures end to end (in `_all_groups` order): a seed
        # and a draw per group cost about 100 hashing ops each, 7,500 of the 35,000 graph ops
        # of ResNet-50's step (75 groups).
        if self.fixed_probability is None:
            q, relaxed = sample_mask(logits, beta, seed, relaxation, at_least_one=False)
        else:
            q, relaxed = sample_fixed(logits, self.fixed_probability, seed, at_least_one=False)
        priority = tf.sigmoid(beta * logits)
        parts = zip(*(tf.split(t, sizes) for t in (logits, q, relaxed, priority)))
        for (name, group), (group_logits, group_q, group_relaxed, group_priority) in zip(
            groups, parts
        ):
            if group.kind == "layer":
                context.gates[name] = Gate(group_q[0], group_relaxed[0])
            else:
                group_q = keep_at_least_one(group_q, group_logits)
                context.channels[name] = self._active_set(
                    context, name, group_q, group_relaxed, group_priority, capacities
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
