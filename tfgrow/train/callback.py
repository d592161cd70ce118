"""Keras `fit` for growing networks: `GrowingCallback` and the training pass it configures.

`model.fit(..., callbacks=[GrowingCallback(...)])` trains a `GrowingNetwork` with the method of
METHOD.md §1, as the launcher's `Trainer` does:

- each training call (`model(x, training=True)`, once per `fit` step) samples q for every group
  from a stateless seed folded with the optimizer's step (`optimizer.iterations`, so every
  replica draws the same sub-network and a resumed run draws what it would have), runs the compact
  pass with m = q * sigma(beta s) inside Keras' gradient tape (the sampled values carry the task
  gradient to the logits), and adds the penalty `lambda_c sum sigma(beta s) + lambda_l ...` to
  the model's losses (`add_loss`; Keras scales it for distribution like the launcher's
  `tf.nn.scale_regularization_loss`);
- the same call assigns BN moving statistics, counters u (`+1/steps_per_epoch` for structures
  active with their block) and the training-FLOPs accumulators, in cross-replica context;
- lambda is refreshed from the `Budget` inside the step every `budget.update_steps` steps.

The temperatures beta = beta0 * gamma^u follow the counters step by step (structure mode) or the
epoch `iterations / steps_per_epoch` (global mode). The callback owns the run settings, logs every
`log_every_steps` steps and every epoch (console, `logs` dict, optional TensorBoard), and stops
the run with `NonFiniteLossError` at the step where the loss becomes NaN or infinite.

Difference from the launcher: weights and logits are updated by the Keras optimizer you compile
with, with one learning rate; a momentum optimizer keeps moving detached weights with their
momentum buffers (the launcher's `MaskedMomentum` does not). Plain SGD without momentum or weight
decay leaves detached structures exactly in place.
"""

import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfgrow import cost as cost_lib
from tfgrow.budget import Budget
from tfgrow.masks import RELAXATIONS, Temperature, step_seed
from tfgrow.train.errors import NonFiniteLossError
from tfgrow.train.trainer import Trainer


@dataclasses.dataclass
class FitSettings:
    """What a `fit` training pass needs beyond the network (created by `GrowingCallback`).

    Attributes:
        temperature: the `Temperature` schedule.
        steps_per_epoch: training steps per epoch (counters advance 1/steps_per_epoch a step).
        budget: a `Budget`, or None for no penalty (lambda = 0).
        relaxation: "sigmoid" or "gumbel".
        seed: seed of the mask sampling.
        state: dict of scalar tf.Variables: lambda_channel, lambda_layer, train_flops,
            train_flops_full (created under the model's strategy scope).
    """

    temperature: Temperature
    steps_per_epoch: int
    budget: Budget | None
    relaxation: str
    seed: int
    state: dict

    def read(self, name):
        return tf.convert_to_tensor(self.state[name]).numpy().item()


def _step(network):
    optimizer = getattr(network, "optimizer", None)
    if optimizer is None:
        return tf.constant(0, tf.int64)
    return tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)


def inference_settings(network):
    """(temperature, epoch) of the network's inference: the run's while a GrowingCallback is
    attached, else those saved with the model (None: beta = 1)."""
    settings = network.fit_settings
    if settings is None:
        return network._current_temperature, network._current_epoch
    epoch = tf.cast(_step(network), tf.float32) / float(settings.steps_per_epoch)
    return settings.temperature, epoch


def network_call(network, inputs, training):
    """`GrowingNetwork.call` under Keras: a sampled training pass, or H(s) for inference."""
    settings = network.fit_settings
    if not training:
        temperature, epoch = inference_settings(network)
        return network.forward(inputs, network.deterministic_context(temperature, epoch))
    if not network.growing:
        context = network.full_context(training=True, sync_batch_norm=True)
        outputs = network.forward(inputs, context)
        _assign_all(context.state_updates)
        return outputs
    if settings is None:
        raise ValueError(
            f"Expected a GrowingCallback among the callbacks to train the growing network "
            f"{network.name!r} (it sets the temperatures, the budget and the sampling seed). "
            "Received: a training call without one. Use "
            "model.fit(..., callbacks=[tfgrow.train.callback.GrowingCallback(...)])."
        )
    return _sampled_pass(network, inputs, settings)


def _sampled_pass(network, inputs, settings):
    step = _step(network)
    epoch = tf.cast(step, tf.float32) / float(settings.steps_per_epoch)
    lambda_channel, lambda_layer = _lambdas(network, settings, step)
    context = network.sample_context(
        step_seed(settings.seed, step),
        settings.temperature,
        epoch,
        settings.relaxation,
        sync_batch_norm=True,
    )
    outputs = network.forward(inputs, context)
    channel_sum, layer_sum = network.mask_penalty(settings.temperature, epoch)
    penalty = lambda_channel * channel_sum + lambda_layer * layer_sum

    assignments = list(context.state_updates)
    increment = 1.0 / settings.steps_per_epoch
    groups = network.group_variables()
    for name, active in network.active_structures(context).items():
        counters = groups[name].counters
        assignments.append((counters, tf.convert_to_tensor(counters) + increment * active))
    batch_size = _global_batch_size(inputs)
    widths, blocks = network.widths_and_blocks(context)
    step_flops = cost_lib.training_flops(
        tf.cast(cost_lib.count(network.layer_costs, widths, blocks)[1], tf.float64), batch_size
    )
    full_flops = cost_lib.training_flops(float(network.full_cost()[1]), batch_size)
    state = settings.state
    assignments += [
        (state["train_flops"], tf.convert_to_tensor(state["train_flops"]) + step_flops),
        (state["train_flops_full"], tf.convert_to_tensor(state["train_flops_full"]) + full_flops),
        (state["lambda_channel"], lambda_channel),
        (state["lambda_layer"], lambda_layer),
    ]
    _assign_all(assignments)
    # After the merge_call above: MirroredStrategy runs one replica thread at a time, and each
    # resumes here and reaches Keras' compute_loss before the next resumes, so clearing first
    # leaves this replica's penalty alone in the network's (shared) loss list. Added before the
    # merge_call, the other replica's penalty was counted too (the reported loss, not the
    # gradients, doubled it on two replicas).
    network._clear_losses()
    network.add_loss(penalty)
    return outputs


def _global_batch_size(inputs):
    local = tf.cast(tf.shape(inputs)[0], tf.float64)
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return local
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, local)


def _lambdas(network, settings, step):
    """(lambda_c, lambda_l): refreshed from the budget every `update_steps` (as the Trainer)."""
    state = settings.state
    old = (
        tf.convert_to_tensor(state["lambda_channel"]),
        tf.convert_to_tensor(state["lambda_layer"]),
    )
    budget = settings.budget
    if budget is None:
        return old
    widths, blocks = network.deterministic_widths_and_blocks()
    fraction = cost_lib.fraction(network.layer_costs, widths, blocks, budget.metric)
    fraction = tf.cast(fraction, tf.float32)
    new = [tf.cast(value, tf.float32) for value in budget.lambdas(fraction)]
    refresh = tf.equal(step % budget.update_steps, 0)
    return tuple(tf.where(refresh, n, o) for n, o in zip(new, old))


def _assign_all(assignments):
    """Assigns (variable, value) pairs in cross-replica context (every replica computed the
    same values; mirrored variables without an aggregation cannot be assigned per replica)."""
    if not assignments:
        return
    variables = [variable for variable, _ in assignments]
    values = [value for _, value in assignments]
    replica = tf.distribute.get_replica_context()
    if replica is None:
        Trainer._assign_all(tf.distribute.get_strategy(), variables, values)
    else:
        replica.merge_call(Trainer._assign_all, args=(variables, values))


class GrowingCallback(keras.callbacks.Callback):
    """Trains a `GrowingNetwork` with `model.fit` by the growing method (METHOD.md §1).

    Args:
        budget: a `tfgrow.budget.Budget` (lambda from the cost of H(s)), or None for no penalty.
        epochs: training epochs T of the temperature schedule (gamma = final ** (1 / T));
            None takes `fit`'s `epochs`.
        steps_per_epoch: None takes `fit`'s step count (give it for datasets of unknown length).
        beta0, final_temperature, temperature_mode: METHOD.md §1.4.
        relaxation: "sigmoid" or "gumbel".
        seed: seed of the per-step mask sampling.
        log_every_steps: console (and TensorBoard) logging interval in steps; 0 for epochs only.
        log_dir: TensorBoard directory, or None.

    Example:
    >>> model.fit(images, labels, epochs=2, callbacks=[GrowingCallback(Budget(target=0.3))])
    """

    def __init__(
        self,
        budget=None,
        epochs=None,
        steps_per_epoch=None,
        beta0=1.0,
        final_temperature=200.0,
        temperature_mode="structure",
        relaxation="sigmoid",
        seed=0,
        log_every_steps=50,
        log_dir=None,
    ):
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(
                f"Expected relaxation in {RELAXATIONS}. Received: relaxation={relaxation!r}"
            )
        self.budget = budget
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.beta0 = beta0
        self.final_temperature = final_temperature
        self.temperature_mode = temperature_mode
        self.relaxation = relaxation
        self.seed = int(seed)
        self.log_every_steps = int(log_every_steps)
        self.log_dir = log_dir
        self.settings = None
        self._writer = None
        self._start_time = None

    def on_train_begin(self, logs=None):
        model = self.model
        epochs = self.epochs or self.params.get("epochs")
        steps = self.steps_per_epoch or self.params.get("steps")
        if not steps:
            raise ValueError(
                "Expected the number of steps per epoch. Received: steps_per_epoch=None and a "
                "dataset of unknown length; pass GrowingCallback(steps_per_epoch=...)."
            )
        temperature = Temperature(
            self.beta0, self.final_temperature, self.temperature_mode, float(epochs)
        )
        with model.distribute_strategy.scope():
            state = {
                name: tf.Variable(0.0, dtype=dtype, trainable=False, name=name)
                for name, dtype in (
                    ("lambda_channel", tf.float32),
                    ("lambda_layer", tf.float32),
                    ("train_flops", tf.float64),
                    ("train_flops_full", tf.float64),
                )
            }
        self.settings = FitSettings(
            temperature, int(steps), self.budget, self.relaxation, self.seed, state
        )
        model.fit_settings = self.settings
        model._current_temperature = temperature  # travels with model.save (get_config)
        if self.log_dir:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._start_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        loss = logs.get("loss")
        step = self._step()
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"Non-finite training loss at step {step}: {float(loss)}. Lower the learning "
                "rate or check the input data; weights saved before this step are the last good "
                "ones (e.g. keras.callbacks.ModelCheckpoint or BackupAndRestore files)."
            )
        if self.log_every_steps and step % self.log_every_steps == 0:
            values = self.growth_logs()
            logging.info(
                "step %d  loss %.4f  budget_fraction %.3f  lambda_c %.4f  savings %.2fx",
                step,
                float(loss if loss is not None else float("nan")),
                values["budget_fraction"],
                values["lambda_channel"],
                values["train_cost_savings"],
            )
            self._write(step, values, logs)

    def on_epoch_end(self, epoch, logs=None):
        values = self.growth_logs()
        if logs is not None:
            logs.update(values)
        widths, blocks = self.model.architecture()
        logging.info(
            "epoch %d  step %d  loss %.4f  params %d (%.1f%% of full)  flops %.1f%%  blocks %d/%d"
            "  savings %.2fx  widths %s  %.0fs",
            epoch + 1,
            self._step(),
            float((logs or {}).get("loss", float("nan"))),
            values["params"],
            100.0 * values["params_fraction"],
            100.0 * values["flops_fraction"],
            sum(blocks.values()),
            len(blocks),
            values["train_cost_savings"],
            widths,
            time.time() - self._start_time,
        )
        self._write(self._step(), values, logs or {})
        if self._writer is not None:
            self._writer.flush()

    def on_train_end(self, logs=None):
        self.model._current_epoch = self._step() / float(self.settings.steps_per_epoch)

    def growth_logs(self):
        """Architecture H(s), its cost, lambda and the training-cost saving so far."""
        model = self.model
        widths, blocks = model.architecture()
        params, flops = cost_lib.count(model.layer_costs, widths, blocks)
        full_params, full_flops = model.full_cost()
        metric = self.budget.metric if self.budget is not None else "params"
        train_flops = self.settings.read("train_flops")
        return {
            "budget_fraction": float(cost_lib.fraction(model.layer_costs, widths, blocks, metric)),
            "lambda_channel": self.settings.read("lambda_channel"),
            "lambda_layer": self.settings.read("lambda_layer"),
            "params": int(params),
            "flops": int(flops),
            "params_fraction": float(params / full_params),
            "flops_fraction": float(flops / full_flops),
            "train_flops": train_flops,
            "train_cost_savings": self.settings.read("train_flops_full") / max(train_flops, 1.0),
        }

    def _step(self):
        return int(tf.convert_to_tensor(self.model.optimizer.iterations).numpy())

    def _write(self, step, values, logs):
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for key, value in {**logs, **values}.items():
                if isinstance(value, (int, float, np.integer, np.floating)):
                    tf.summary.scalar(f"fit/{key}", value)
