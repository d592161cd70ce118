"""The per-step growth update: one implementation for the launcher's trainer and `model.fit`.

Every training step of a growing network (METHOD.md §1.2 to §1.4 and §1.7, DESIGN.md "One step"):

1. `lambdas`: lambda_c and lambda_l, refreshed from the budget (the cost of H(s) against the full
   network) every `budget.update_steps` steps (METHOD.md §1.3);
2. `begin`: samples q for every group from a stateless seed folded with the step, so every
   replica draws the same sub-network and a resumed run draws what it would have, and computes
   the penalty `lambda_c sum sigma(beta s) + lambda_l ...` (plain sums; the caller scales
   it for distribution);
3. `assignments`: the step's state writes: BN moving statistics, counters u (+1/steps_per_epoch
   for structures active with their block, METHOD.md §1.4), the training-FLOPs accumulators
   (3 x forward FLOPs of the sampled sub-network x global batch, §1.7) and the lambdas;
   `assign_all` writes them in cross-replica context.

`tfgrow.train.trainer.Trainer` calls these around its gradient step and `MaskedMomentum`;
`GrowthUpdate.keras_training_call` calls them inside Keras' `fit` step (`GrowingCallback`
attaches the update to the model). Both therefore draw the same masks and count the same
numbers for the same seed and steps (tests/train/test_growth_update.py).
"""

import dataclasses

import tensorflow as tf

import tfgrow.cost as cost_lib
from tfgrow.compact import tf_variable
from tfgrow.execution import ExecutionContext
from tfgrow.masks import RELAXATIONS, step_seed

# The update's scalar state: (name, dtype). FLOP sums reach 1e15 in a long run: float64 keeps them
# exact to the FLOP.
STATE_VARIABLES = (
    ("lambda_channel", tf.float32),
    ("lambda_layer", tf.float32),
    ("train_flops", tf.float64),
    ("train_flops_full", tf.float64),
)


@dataclasses.dataclass
class StepDraw:
    """What `GrowthUpdate.begin` drew for one step.

    Attributes:
        step: the step (int64 tensor) the masks were drawn for.
        epoch: `step / steps_per_epoch` (float32), the temperatures' epoch.
        lambdas: (lambda_c, lambda_l) of this step.
        context: the sampled `ExecutionContext` to run the network with.
        penalty: `lambda_c * channel term + lambda_l * layer term` (0 for a full network),
            unscaled: add it to the loss scaled for distribution.
    """

    step: tf.Tensor
    epoch: tf.Tensor
    lambdas: tuple
    context: ExecutionContext
    penalty: tf.Tensor


class GrowthUpdate:
    """The growth bookkeeping of one training step, and its state (lambdas, FLOP sums).

    Build it under the strategy's scope: it creates its state variables (`STATE_VARIABLES`,
    attributes of the same names).

    Args:
        model: a growing network (`GrowingModel` from `tfgrow.grow`; growing or full).
        temperature: the `Temperature` schedule (METHOD.md §1.4).
        steps_per_epoch: training steps per epoch (counters advance 1/steps_per_epoch a step).
        budget: a `Budget` (lambda from the cost of H(s)), or None: lambda keeps its value (0).
        relaxation: "sigmoid" or "gumbel".
        seed: seed of the mask sampling.
    """

    def __init__(
        self, model, temperature, steps_per_epoch, budget=None, relaxation="sigmoid", seed=0
    ):
        check_relaxation(relaxation)
        if int(steps_per_epoch) < 1:
            raise ValueError(
                f"Expected steps_per_epoch >= 1. Received: steps_per_epoch={steps_per_epoch}"
            )
        self.model = model
        self.temperature = temperature
        self.steps_per_epoch = int(steps_per_epoch)
        self.budget = budget
        self.relaxation = relaxation
        self.seed = int(seed)
        for name, dtype in STATE_VARIABLES:
            setattr(self, name, tf.Variable(0.0, dtype=dtype, trainable=False, name=name))

    def state_variables(self):
        """Name -> state variable (lambdas and FLOP sums), for checkpoints."""
        return {name: getattr(self, name) for name, _ in STATE_VARIABLES}

    def read(self, name):
        """A state variable as a Python number (plain or mirrored alike)."""
        return tf.convert_to_tensor(getattr(self, name)).numpy().item()

    def epoch(self, step):
        return tf.cast(step, tf.float32) / float(self.steps_per_epoch)

    def budget_fraction(self):
        """Cost of H(s) as a fraction of the full network, in the budget's metric (tensor)."""
        widths, blocks = self.model.deterministic_widths_and_blocks()
        return self.budget.current_fraction(
            self.model.layer_costs, widths, blocks, getattr(self.model, "latency_table", None)
        )

    def lambdas(self, step):
        """(lambda_c, lambda_l) for `step`: refreshed from the budget every update_steps."""
        old = (tf.convert_to_tensor(self.lambda_channel), tf.convert_to_tensor(self.lambda_layer))
        if not self.model.growing or self.budget is None:
            return old
        new = [
            tf.cast(value, tf.float32)
            for value in self.budget.lambdas(tf.cast(self.budget_fraction(), tf.float32))
        ]
        refresh = tf.equal(step % self.budget.update_steps, 0)
        # H(s) is a count of logits above 0: lambda carries no gradient.
        return tuple(tf.stop_gradient(tf.where(refresh, n, o)) for n, o in zip(new, old))

    def begin(self, step, capacities=None):
        """Lambdas, the sampled sub-network and the penalty of `step`.

        Call it inside the gradient tape (the mask values m = q sigma(beta s) and the penalty
        carry gradient to the logits) and before `assign_all` writes the step's counters: the
        temperatures beta = beta0 gamma^u are those of the counters before the step.

        Args:
            step: int64 scalar, the step being taken (0 for the first).
            capacities: None (exact widths) or group -> Python int static widths (XLA).

        Returns:
            A `StepDraw`.
        """
        step = tf.cast(step, tf.int64)
        epoch = self.epoch(step)
        lambdas = self.lambdas(step)
        context = self.model.sample_context(
            step_seed(self.seed, step),
            self.temperature,
            epoch,
            self.relaxation,
            sync_batch_norm=True,
            capacities=capacities,
        )
        return StepDraw(step, epoch, lambdas, context, self._penalty(epoch, lambdas))

    def _penalty(self, epoch, lambdas):
        if not self.model.growing:
            return tf.constant(0.0)
        channel_sum, layer_sum = self.model.mask_penalty(self.temperature, epoch)
        return lambdas[0] * channel_sum + lambdas[1] * layer_sum

    def assignments(self, draw, global_batch_size):
        """The step's (variable, new value) writes: BN statistics, counters, FLOPs, lambdas.

        Args:
            draw: the step's `StepDraw`.
            global_batch_size: examples in the step over all replicas (int or tensor).
        """
        model = self.model
        assignments = list(draw.context.state_updates)
        if model.growing:
            increment = 1.0 / self.steps_per_epoch
            groups = model.group_variables()
            for name, active in model.active_structures(draw.context).items():
                counters = groups[name].counters
                assignments.append((counters, tf.convert_to_tensor(counters) + increment * active))
        batch_size = tf.cast(global_batch_size, tf.float64)
        widths, blocks = model.widths_and_blocks(draw.context)
        forward_flops = tf.cast(cost_lib.count(model.layer_costs, widths, blocks)[1], tf.float64)
        full_flops = float(model.full_cost()[1])
        lambda_channel, lambda_layer = draw.lambdas
        return assignments + [
            (self.train_flops, self._sum(self.train_flops, forward_flops, batch_size)),
            (self.train_flops_full, self._sum(self.train_flops_full, full_flops, batch_size)),
            (self.lambda_channel, lambda_channel),
            (self.lambda_layer, lambda_layer),
        ]

    @staticmethod
    def _sum(total, forward_flops, batch_size):
        return tf.convert_to_tensor(total) + cost_lib.training_flops(forward_flops, batch_size)

    # ---------------------------------------------------------------- Keras fit
    def keras_training_call(self, network, inputs):
        """`network(inputs, training=True)` inside a Keras `fit` step.

        The step is the optimizer's `iterations`. The penalty goes to the network's losses
        (`add_loss`; Keras scales it for distribution like `tf.nn.scale_regularization_loss`).
        """
        draw = self.begin(keras_step(network))
        outputs = network.forward(inputs, draw.context)
        assign_all(self.assignments(draw, global_batch_size(inputs)))
        # After the merge_call above: MirroredStrategy runs one replica thread at a time, and
        # each resumes here and reaches Keras' compute_loss before the next resumes, so clearing
        # first leaves this replica's penalty alone in the network's (shared) loss list. Added
        # before the merge_call, the other replica's penalty was counted too (the reported loss,
        # not the gradients, doubled it on two replicas).
        network._clear_losses()
        network.add_loss(draw.penalty)
        return outputs


def check_relaxation(relaxation):
    if relaxation not in RELAXATIONS:
        raise ValueError(
            f"Expected relaxation in {RELAXATIONS}. Received: relaxation={relaxation!r}"
        )


def keras_step(network):
    """The Keras training step: the optimizer's `iterations` (0 before compile)."""
    optimizer = getattr(network, "optimizer", None)
    if optimizer is None:
        return tf.constant(0, tf.int64)
    return tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)


def global_batch_size(inputs):
    """Examples in this step over all replicas (the replicas' batches summed)."""
    local = tf.cast(tf.shape(inputs)[0], tf.float64)
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return local
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, local)


def assign_all(assignments, scatters=()):
    """Writes a step's updates in cross-replica context.

    Every replica computed the same values; they are assigned per device in cross-replica
    context (mirrored variables without an aggregation cannot be assigned per replica, and a
    mirrored slot read inside a cross-replica update would be the primary's).

    Args:
        assignments: (variable, new value) pairs.
        scatters: (variable, scatter_nd indices, new rows) triples, written in place after the
            assignments (`MaskedMomentum.row_step`).
    """
    if not assignments and not scatters:
        return
    arguments = (
        [variable for variable, _ in assignments],
        [value for _, value in assignments],
        [variable for variable, _, _ in scatters],
        [indices for _, indices, _ in scatters],
        [rows for _, _, rows in scatters],
    )
    replica = tf.distribute.get_replica_context()
    if replica is None:
        _assign_in_cross_replica(tf.distribute.get_strategy(), *arguments)
    else:
        replica.merge_call(_assign_in_cross_replica, args=arguments)


def _assign_in_cross_replica(strategy, variables, values, scatter_variables, indices, rows):
    for variable, value in zip(variables, values):
        strategy.extended.update(tf_variable(variable), _assign, args=(value,), group=False)
    for variable, where, value in zip(scatter_variables, indices, rows):
        strategy.extended.update(tf_variable(variable), _scatter, args=(where, value), group=False)


def _assign(variable, value):
    return variable.assign(tf.cast(value, variable.dtype))


def _scatter(variable, indices, rows):
    return variable.scatter_nd_update(indices, tf.cast(rows, variable.dtype))
