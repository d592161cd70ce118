"""The distributed training and evaluation steps of a growing (or full) network.

One training step (DESIGN.md, "Training"); the growth bookkeeping is `GrowthUpdate`
(`tfgrow/growing/update.py`), the one `model.fit`'s `GrowingCallback` runs too:
1. lambda from the budget, and q sampled for every group from a stateless seed folded with the
   step, so every replica draws the same sub-network (`GrowthUpdate.begin`);
2. run the compact forward pass, the task loss (`tf.nn.compute_average_loss` over the global
   batch) and the mask penalty `lambda_c sum sigma(beta s) + lambda_l ...`
   (`tf.nn.scale_regularization_loss`);
3. all-reduce the gradients, then in cross-replica context update the computed weight entries
   (`MaskedMomentum`), the logits, and (`GrowthUpdate.assignments`) BN moving statistics,
   counters u, lambda and the FLOP accumulators.
   Kernels whose input runs below full width are differentiated and updated at their active
   rows only (`GrowingModel.gather_kernel_rows`, `MaskedMomentum.row_step`).
Under `mixed_float16` the loss is scaled (`tfgrow.train.loss_scale`): the optimiser's writes of
a step whose gradients overflow are dropped, and the scale halves.
"""

import tensorflow as tf

from tfgrow.growing.update import GrowthUpdate, assign_all
from tfgrow.precision import LOSS_SCALED_POLICY, policy_name
from tfgrow.train.loss_scale import DynamicLossScale, keep_if_finite
from tfgrow.train.optimizer import MaskedMomentum, summed_slices


class Trainer(tf.Module):
    """Holds the run's optimisation state and builds its `tf.function` steps.

    Args:
        model: a growing network (`GrowingModel` from `tfgrow.grow`) built under `strategy.scope()`.
        strategy: the `tf.distribute.Strategy`.
        global_batch_size: examples per step over all replicas.
        steps_per_epoch: training steps per epoch (counters advance 1/steps_per_epoch per step).
        learning_rate: callable step -> weight learning rate (a Keras schedule).
        mask_learning_rate: callable step -> logit learning rate.
        temperature: a `Temperature`.
        momentum, weight_decay, nesterov: weight optimiser settings.
        mask_momentum: logit optimiser momentum (no weight decay on logits, METHOD.md Eq. 8).
        relaxation: "sigmoid" or "gumbel".
        seed: integer seed of the mask sampling.
        budget: a `Budget`; lambda is refreshed from it inside the step every
            `budget.update_steps` steps (no host round trip).
        jit_compile: compile the steps with XLA. Shapes must then be static: pass per-group
            `capacities` to `train_step` and `eval_step` (see `GrowingModel.capacities_for`).
        compact_updates: update kernels at their active input rows (scatter) rather than with
            a masked pass over the full kernel; both give the same weights
            (tests/train/test_trainer.py). False is for that comparison.
        gradient_clip_norm: None (off), or rescale the weights' gradients (summed over
            replicas) so that their global norm is at most this (Zaremba et al.'s 5 or 10 clip
            a loss summed over 35 tokens: 5 / 35 or 10 / 35 on the per-token mean); the logits'
            gradients are not clipped.

    Labels are `[B]` (one class per example) or `[B, T]` with logits `[B, T, classes]` (a
    language model's next tokens): the loss is the mean cross-entropy over every label, and
    the metrics count labels (tokens), not examples.
    """

    def __init__(
        self,
        model,
        strategy,
        global_batch_size,
        steps_per_epoch,
        learning_rate,
        mask_learning_rate,
        temperature,
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=False,
        mask_momentum=0.9,
        relaxation="sigmoid",
        seed=0,
        budget=None,
        jit_compile=False,
        compact_updates=True,
        gradient_clip_norm=None,
    ):
        super().__init__(name="trainer")
        self.model = model
        self.strategy = strategy
        self.global_batch_size = int(global_batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.learning_rate = learning_rate
        self.mask_learning_rate = mask_learning_rate
        self.temperature = temperature
        self.relaxation = relaxation
        self.seed = int(seed)
        self.growing = model.growing
        self.compact_updates = bool(compact_updates) and self.growing
        self.budget = budget
        self.gradient_clip_norm = gradient_clip_norm
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.growth = GrowthUpdate(
                model, temperature, steps_per_epoch, budget, relaxation, self.seed
            )
            # Tracked here under their own names (lambda_channel, train_flops, ...): the keys
            # checkpoints have always used, so earlier runs still resume.
            for name, variable in self.growth.state_variables().items():
                setattr(self, name, variable)
            # The host's capacity record (CapacityPlanner.state), checkpointed for exact resume.
            self.capacity_state = tf.Variable(
                tf.zeros([len(model.channel_groups) + 2], tf.float64),
                trainable=False,
                name="capacity_state",
            )
            self.weight_optimizer = MaskedMomentum(
                model.weight_variables(), momentum, weight_decay, nesterov, name="weights"
            )
            self.mask_optimizer = MaskedMomentum(
                model.mask_variables() if self.growing else [], mask_momentum, name="masks"
            )
            # mixed_float16 only (tfgrow.precision); None leaves checkpoints as they were.
            self.loss_scale = (
                DynamicLossScale() if policy_name(model) == LOSS_SCALED_POLICY else None
            )
        self.num_traces = 0  # traces (compilations under XLA) of the training step
        self.num_eval_traces = 0
        self.jit_compile = bool(jit_compile)
        # Plain SGD: an embedding's looked-up rows only (not under XLA, nor with a loss scale).
        dense_only = self.jit_compile or self.loss_scale is not None
        self.sparse_updates = self.weight_optimizer.plain_sgd and not dense_only
        on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        if self.jit_compile and not on_tpu and strategy.num_replicas_in_sync > 1:
            raise ValueError(
                "XLA mode (jit_compile=True) compiles the whole step as one cluster on one "
                f"device. Received {type(strategy).__name__} with "
                f"{strategy.num_replicas_in_sync} replicas, whose variables live on several "
                "devices. Drop configs/modes/xla.gin (ragged mode runs on several replicas) or "
                "train on one device; TPUStrategy (--tpu) always compiles with XLA."
            )
        # TPUStrategy compiles each replica's step itself; elsewhere jit_compile does.
        jit = self.jit_compile and not on_tpu
        # autograph=False: the steps use explicit tf.cond; converting them only slows tracing.
        self._train_function = tf.function(self._train_step, autograph=False, jit_compile=jit)
        self._eval_function = tf.function(self._eval_step, autograph=False, jit_compile=jit)

    def train_step(self, batch, capacities=None):
        """One distributed training step; returns summed metrics as tensors.

        Args:
            batch: (images, labels), a distributed batch.
            capacities: None (exact ragged widths) or group -> Python int: every listed group
                runs at that static width. Each distinct set of capacities is one trace.

        Returns:
            dict of "loss_sum", "correct", "count", and with capacities "dropped" (structures
            dropped for lack of capacity) and "sampled" (vector: structures drawn per group, in
            `model.channel_groups` order).
        """
        return self._train_function(batch, _freeze(capacities))

    def eval_step(self, batch, capacities=None):
        """Evaluates H(s) on one distributed batch; `capacities` as in `train_step`."""
        return self._eval_function(batch, _freeze(capacities))

    # ------------------------------------------------------------------ training
    def _train_step(self, batch, capacities):
        self.num_traces += 1  # Python side effect: counts traces, not calls
        results = self.strategy.run(
            self._replica_train_step, args=batch, kwargs={"capacities": _thaw(capacities)}
        )
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in results.items()
        }

    def _replica_train_step(self, images, labels, capacities=None):
        step = tf.convert_to_tensor(self.step)
        with tf.GradientTape() as tape:
            draw = self.growth.begin(step, capacities)  # inside the tape: m carries gradient
            kernel_rows = (
                self.model.gather_kernel_rows(draw.context) if self.compact_updates else []
            )
            tape.watch([rows.rows for rows in kernel_rows])  # read sparsely, not via variables
            logits = self.model.forward(images, draw.context)
            per_example = _cross_entropy(labels, logits)
            loss = tf.nn.compute_average_loss(
                _mean_over_positions(per_example), global_batch_size=self.global_batch_size
            ) + tf.nn.scale_regularization_loss(draw.penalty)
        gradients, row_gradients, finite = self._all_reduced_gradients(tape, loss, kernel_rows)
        assignments = self.growth.assignments(draw, self.global_batch_size)
        assignments.append((self.step, step + 1))
        updates, scatters = self._optimizer_updates(
            step, draw.context, gradients, kernel_rows, row_gradients
        )
        if self.loss_scale is not None:  # a step with overflowing gradients changes no weight
            updates, scatters = keep_if_finite(finite, updates, scatters)
            assignments += self.loss_scale.assignments(finite)
        assign_all(assignments + updates, scatters)
        metrics = _metrics(labels, logits, per_example)
        if capacities is not None and self.growing:
            metrics.update(self._capacity_metrics(draw.context))
        return metrics

    def _dense_variables(self, kernel_rows):
        """Weights and logits updated whole: all but the kernels updated by rows."""
        row_ids = {id(rows.variable) for rows in kernel_rows}
        weights = self.weight_optimizer.variables_to_update
        dense = [v for v in weights if id(v) not in row_ids]
        return dense + self.mask_optimizer.variables_to_update

    def _all_reduced_gradients(self, tape, loss, kernel_rows):
        """(id(variable) -> gradient of the dense variables, [gradient of each KernelRows],
        whether all are finite (None without loss scaling)), summed over replicas; variables
        the step did not reach get zeros. With a loss scale the loss is scaled before and the
        gradients unscaled after the all-reduce."""
        dense = self._dense_variables(kernel_rows)
        targets = dense + [rows.rows for rows in kernel_rows]
        # The upstream gradient `scale` differentiates loss * scale (outside the tape).
        scale = None if self.loss_scale is None else tf.convert_to_tensor(self.loss_scale.scale)
        gradients = tape.gradient(loss, targets, output_gradients=scale)
        gradients = [self._gradient_form(g, t) for g, t in zip(gradients, targets)]
        replica = tf.distribute.get_replica_context()
        gradients = replica.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        finite = None
        if self.loss_scale is not None:
            gradients, finite = self.loss_scale.unscale(gradients)
        if self.gradient_clip_norm is not None:  # the weights' gradients, not the logits'
            logits = {id(v) for v in self.mask_optimizer.variables_to_update}
            is_weight = [id(v) not in logits for v in dense] + [True] * len(kernel_rows)
            gradients = _clip_by_global_norm(gradients, is_weight, self.gradient_clip_norm)
        by_id = dict(zip((id(v) for v in dense), gradients))
        return by_id, gradients[len(dense) :], finite

    def _gradient_form(self, gradient, target):
        """Zeros where the step did not reach `target`; a sparse gradient summed per row and
        kept sparse with `sparse_updates`; otherwise dense."""
        if gradient is None:
            return tf.zeros_like(target)
        if isinstance(gradient, tf.IndexedSlices) and self.sparse_updates:
            return summed_slices(gradient)
        return tf.convert_to_tensor(gradient)

    def _optimizer_updates(self, step, context, gradients, kernel_rows, row_gradients):
        """(assignments, scatters) of the weight and logit optimisers for this step.

        Entries the step did not compute keep their weights and momentum (`weight_masks`).
        """
        weights = self.weight_optimizer.variables_to_update
        masks_by_id = self.model.weight_masks(context) if self.growing else {}
        weight_rate = tf.cast(self.learning_rate(step), tf.float32)
        mask_rate = tf.cast(self.mask_learning_rate(step), tf.float32)
        dense = [gradients.get(id(v)) for v in weights]
        sparse = [(v, g) for v, g in zip(weights, dense) if isinstance(g, tf.IndexedSlices)]
        dense = [None if isinstance(g, tf.IndexedSlices) else g for g in dense]
        assignments = self.weight_optimizer.step(
            dense, weight_rate, [masks_by_id.get(id(v)) for v in weights]
        )
        assignments += self.mask_optimizer.step(
            [gradients[id(v)] for v in self.mask_optimizer.variables_to_update], mask_rate
        )
        scatters = []
        for variable, gradient in sparse:  # no mask: uncomputed entries have zero gradient
            scatters += self.weight_optimizer.sparse_step(variable, gradient, weight_rate)
        for rows, gradient in zip(kernel_rows, row_gradients):
            scatters += self.weight_optimizer.row_step(rows, gradient, weight_rate)
        return assignments, scatters

    def _capacity_metrics(self, context):
        """The structures "dropped" and "sampled" (per group) in a step with static capacities."""
        # Every replica drew the same masks: divide so the host's SUM over replicas is exact.
        replicas = float(tf.distribute.get_replica_context().num_replicas_in_sync)
        dropped = tf.add_n([tf.cast(d, tf.float32) for d in context.overflows.values()])
        sampled = [
            tf.reduce_sum(context.channels[name].mask)
            + tf.cast(context.overflows[name], tf.float32)
            for name in self.model.channel_groups
        ]
        return {"dropped": dropped / replicas, "sampled": tf.stack(sampled) / replicas}

    def read(self, name):
        """A scalar state variable (step, lambda_channel, train_flops, ...) as a Python number.

        Works for plain and distributed (mirrored) variables alike.
        """
        return tf.convert_to_tensor(getattr(self, name)).numpy().item()

    def budget_fraction(self):
        """Cost of H(s) as a fraction of the full network, in the budget's metric (tensor)."""
        return self.growth.budget_fraction()

    # ---------------------------------------------------------------- evaluation
    def _eval_step(self, batch, capacities):
        self.num_eval_traces += 1
        results = self.strategy.run(
            self._replica_eval_step, args=batch, kwargs={"capacities": _thaw(capacities)}
        )
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in results.items()
        }

    def _replica_eval_step(self, images, labels, capacities=None):
        epoch = self.growth.epoch(tf.convert_to_tensor(self.step))
        context = self.model.deterministic_context(self.temperature, epoch, capacities=capacities)
        logits = self.model.forward(images, context)
        per_example = _cross_entropy(labels, logits)
        return _metrics(labels, logits, per_example)


def _freeze(capacities):
    """A hashable form of group -> capacity: tf.function keys its traces on it."""
    return None if capacities is None else tuple(sorted((k, int(v)) for k, v in capacities.items()))


def _thaw(capacities):
    return None if capacities is None else dict(capacities)


def _clip_by_global_norm(gradients, selected, clip_norm):
    """`gradients` with those where `selected` is True rescaled together to a global norm of
    at most `clip_norm` (`tf.clip_by_global_norm`); the others as they are."""
    chosen = [g for g, keep in zip(gradients, selected) if keep]
    clipped = iter(tf.clip_by_global_norm(chosen, clip_norm)[0])
    return [next(clipped) if keep else g for g, keep in zip(gradients, selected)]


def _mean_over_positions(per_label):
    """Per-example losses `[B]`: a `[B, T]` loss averaged over its T positions (T is the same
    for every example, so the mean over examples is the mean over all tokens)."""
    if per_label.shape.rank == 1:
        return per_label
    return tf.reduce_mean(per_label, axis=list(range(1, per_label.shape.rank)))


def _cross_entropy(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)


def _metrics(labels, logits, per_example):
    """Per-replica sums; the host divides after reducing over replicas."""
    predictions = tf.argmax(logits, -1, output_type=tf.int32)
    return {
        "loss_sum": tf.reduce_sum(per_example),
        "correct": tf.reduce_sum(
            tf.cast(tf.equal(predictions, tf.cast(labels, tf.int32)), tf.float32)
        ),
        "count": tf.cast(tf.size(labels), tf.float32),  # examples, or tokens for [B, T] labels
    }
