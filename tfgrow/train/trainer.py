"""The distributed training and evaluation steps of a growing (or full) network.

One training step (DESIGN.md, "Training"):
1. sample q for every group from a stateless seed folded with the step, so every replica draws
   the same sub-network;
2. run the compact forward pass, the task loss (`tf.nn.compute_average_loss` over the global
   batch) and the mask penalty `lambda_c sum sigma(beta s) + lambda_l ...`
   (`tf.nn.scale_regularization_loss`);
3. all-reduce the gradients, then in cross-replica context update the computed weight entries
   (`MaskedMomentum`), the logits, BN moving statistics, counters u and the FLOP accumulators.
   Kernels whose input runs below full width are differentiated and updated at their active
   rows only (`GrowingNetwork.gather_kernel_rows`, `MaskedMomentum.row_step`).
"""

import tensorflow as tf

from tfgrow import cost as cost_lib
from tfgrow.compact import tf_variable
from tfgrow.masks import step_seed
from tfgrow.train.optimizer import MaskedMomentum


class Trainer(tf.Module):
    """Holds the run's optimisation state and builds its `tf.function` steps.

    Args:
        model: a `GrowingNetwork` built under `strategy.scope()`.
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
            `capacities` to `train_step` and `eval_step` (see `GrowingNetwork.capacities_for`).
        compact_updates: update kernels at their active input rows (scatter) rather than with
            a masked pass over the full kernel; both give the same weights
            (tests/test_trainer.py). False is for that comparison.
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
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.lambda_channel = tf.Variable(0.0, trainable=False, name="lambda_channel")
            self.lambda_layer = tf.Variable(0.0, trainable=False, name="lambda_layer")
            self.train_flops = tf.Variable(
                0.0, dtype=tf.float64, trainable=False, name="train_flops"
            )
            self.train_flops_full = tf.Variable(
                0.0, dtype=tf.float64, trainable=False, name="train_flops_full"
            )
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
        self.full_flops = float(model.full_cost()[1])
        self.num_traces = 0  # traces (compilations under XLA) of the training step
        self.num_eval_traces = 0
        self.jit_compile = bool(jit_compile)
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
    def epoch_progress(self, step):
        return tf.cast(step, tf.float32) / float(self.steps_per_epoch)

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
        model = self.model
        step = tf.convert_to_tensor(self.step)
        epoch = self.epoch_progress(step)
        lambda_channel, lambda_layer = self._lambdas(step)
        weights = self.weight_optimizer.variables_to_update
        logits_vars = self.mask_optimizer.variables_to_update
        with tf.GradientTape() as tape:
            # Sampled inside the tape: the mask values m = q sigma(beta s) carry the task
            # gradient to the logits of sampled structures (METHOD.md Eq. 8).
            context = model.sample_context(
                step_seed(self.seed, step),
                self.temperature,
                epoch,
                self.relaxation,
                sync_batch_norm=True,
                capacities=capacities,
            )
            kernel_rows = model.gather_kernel_rows(context) if self.compact_updates else []
            tape.watch([rows.rows for rows in kernel_rows])  # read sparsely, not via variables
            logits = model.forward(images, context)
            per_example = _cross_entropy(labels, logits)
            task_loss = tf.nn.compute_average_loss(
                per_example, global_batch_size=self.global_batch_size
            )
            loss = task_loss
            if self.growing:
                channel_sum, layer_sum = model.mask_penalty(self.temperature, epoch)
                penalty = lambda_channel * channel_sum + lambda_layer * layer_sum
                loss = loss + tf.nn.scale_regularization_loss(penalty)
        row_ids = {id(rows.variable) for rows in kernel_rows}
        dense = [v for v in weights if id(v) not in row_ids] + logits_vars
        targets = dense + [rows.rows for rows in kernel_rows]
        gradients = tape.gradient(loss, targets)
        gradients = [
            tf.zeros_like(t) if g is None else tf.convert_to_tensor(g)
            for g, t in zip(gradients, targets)
        ]
        replica = tf.distribute.get_replica_context()
        gradients = replica.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        by_id = dict(zip((id(v) for v in dense), gradients))
        row_gradients = gradients[len(dense) :]

        masks_by_id = model.weight_masks(context) if self.growing else {}
        weight_masks = [masks_by_id.get(id(v)) for v in weights]
        assignments = list(context.state_updates)
        if self.growing:
            increment = 1.0 / self.steps_per_epoch
            for name, active in model.active_structures(context).items():
                counters = model.group_variables()[name].counters
                assignments.append((counters, tf.convert_to_tensor(counters) + increment * active))
        widths, blocks = model.widths_and_blocks(context)
        step_flops = tf.cast(
            cost_lib.training_flops(
                cost_lib.count(model.layer_costs, widths, blocks)[1], self.global_batch_size
            ),
            tf.float64,
        )
        assignments += [
            (self.train_flops, tf.convert_to_tensor(self.train_flops) + step_flops),
            (
                self.train_flops_full,
                tf.convert_to_tensor(self.train_flops_full)
                + cost_lib.training_flops(self.full_flops, self.global_batch_size),
            ),
            (self.step, step + 1),
            (self.lambda_channel, lambda_channel),
            (self.lambda_layer, lambda_layer),
        ]
        learning_rates = (
            tf.cast(self.learning_rate(step), tf.float32),
            tf.cast(self.mask_learning_rate(step), tf.float32),
        )
        assignments += self.weight_optimizer.step(
            [by_id.get(id(v)) for v in weights], learning_rates[0], weight_masks
        )
        assignments += self.mask_optimizer.step(
            [by_id[id(v)] for v in logits_vars], learning_rates[1]
        )
        scatters = []
        for rows, gradient in zip(kernel_rows, row_gradients):
            scatters += self.weight_optimizer.row_step(rows, gradient, learning_rates[0])
        # Every replica computed the same values; assign them per device in cross-replica
        # context (a mirrored slot read inside a cross-replica update would be the primary's).
        replica.merge_call(
            self._assign_all,
            args=(
                [variable for variable, _ in assignments],
                [value for _, value in assignments],
                [variable for variable, _, _ in scatters],
                [indices for _, indices, _ in scatters],
                [values for _, _, values in scatters],
            ),
        )
        metrics = _metrics(labels, logits, per_example)
        if capacities is not None and self.growing:
            # Every replica drew the same masks: divide so the host's SUM over replicas is exact.
            replicas = float(replica.num_replicas_in_sync)
            dropped = tf.add_n([tf.cast(d, tf.float32) for d in context.overflows.values()])
            metrics["dropped"] = dropped / replicas
            metrics["sampled"] = (
                tf.stack(
                    [
                        tf.reduce_sum(context.channels[name].mask)
                        + tf.cast(context.overflows[name], tf.float32)
                        for name in model.channel_groups
                    ]
                )
                / replicas
            )
        return metrics

    @staticmethod
    def _assign_all(strategy, variables, values, scatter_variables=(), indices=(), rows=()):
        """Assigns `values`, then writes rows in place (`MaskedMomentum.row_step`)."""
        for variable, value in zip(variables, values):
            strategy.extended.update(tf_variable(variable), _assign, args=(value,), group=False)
        for variable, where, value in zip(scatter_variables, indices, rows):
            strategy.extended.update(
                tf_variable(variable), _scatter, args=(where, value), group=False
            )

    def read(self, name):
        """A scalar state variable (step, lambda_channel, train_flops, ...) as a Python number.

        Works for plain and distributed (mirrored) variables alike.
        """
        return tf.convert_to_tensor(getattr(self, name)).numpy().item()

    def budget_fraction(self):
        """Cost of H(s) as a fraction of the full network, in the budget's metric (tensor)."""
        widths, blocks = self.model.deterministic_widths_and_blocks()
        return cost_lib.fraction(self.model.layer_costs, widths, blocks, self.budget.metric)

    def _lambdas(self, step):
        """(lambda_c, lambda_l) for this step: refreshed from the budget every update_steps."""
        old = (tf.convert_to_tensor(self.lambda_channel), tf.convert_to_tensor(self.lambda_layer))
        if not self.growing or self.budget is None:
            return old
        new = [
            tf.cast(value, tf.float32)
            for value in self.budget.lambdas(tf.cast(self.budget_fraction(), tf.float32))
        ]
        refresh = tf.equal(step % self.budget.update_steps, 0)
        return tuple(tf.where(refresh, n, o) for n, o in zip(new, old))

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
        epoch = self.epoch_progress(tf.convert_to_tensor(self.step))
        context = self.model.deterministic_context(self.temperature, epoch, capacities=capacities)
        logits = self.model.forward(images, context)
        per_example = _cross_entropy(labels, logits)
        return _metrics(labels, logits, per_example)


def _freeze(capacities):
    """A hashable form of group -> capacity: tf.function keys its traces on it."""
    return None if capacities is None else tuple(sorted((k, int(v)) for k, v in capacities.items()))


def _thaw(capacities):
    return None if capacities is None else dict(capacities)


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
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }


def _assign(variable, value):
    return variable.assign(tf.cast(value, variable.dtype))


def _scatter(variable, indices, rows):
    return variable.scatter_nd_update(indices, tf.cast(rows, variable.dtype))
