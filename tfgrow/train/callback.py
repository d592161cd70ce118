"""Keras `fit` for growing networks: `GrowingCallback`.

`model.fit(..., callbacks=[GrowingCallback(...)])` trains a growing network (a `GrowingModel`
from `tfgrow.grow(model)`) with the method of METHOD.md §1, as the
launcher's `Trainer` does. The callback attaches a `tfgrow.growing.update.GrowthUpdate` to the
model (`model.growth_update`), the same per-step update the `Trainer` runs; each training call
(`model(x, training=True)`, once per `fit` step) then, with the optimizer's `iterations` as the
step:

- samples q for every group from a stateless seed folded with the step (every replica draws the
  same sub-network and a resumed run draws what it would have), runs the compact pass with
  m = q * sigma(beta s) inside Keras' gradient tape (the sampled values carry the task gradient
  to the logits), and adds the penalty `lambda_c sum sigma(beta s) + lambda_l ...` to the model's
  losses (`add_loss`; Keras scales it for distribution like the launcher's
  `tf.nn.scale_regularization_loss`);
- assigns BN moving statistics, counters u (`+1/steps_per_epoch` for structures active with
  their block) and the training-FLOPs accumulators, in cross-replica context;
- refreshes lambda from the `Budget` every `budget.update_steps` steps.

The temperatures beta = beta0 * gamma^u follow the counters step by step (structure mode) or the
epoch `iterations / steps_per_epoch` (global mode). Stateful LSTM/GRU layers (a language model on
truncated-BPTT streams) start every epoch and every evaluation inside `fit` (`validation_data`)
from zero states, as in the launcher (`tfgrow.growing.reset_states` at `on_epoch_begin` and
`on_test_begin`): an epoch's first batch starts its streams, and a resumed `fit` (`initial_epoch`)
starts where the uninterrupted one would have; call `reset_states` yourself before a separate
`model.evaluate` or `predict`. The callback owns the run settings, logs every `log_every_steps`
steps and every epoch (console, `logs` dict, optional TensorBoard), and stops the run with
`NonFiniteLossError` at the step where the loss becomes NaN or infinite.

Difference from the launcher: weights and logits are updated by the Keras optimizer you compile
with, with one learning rate; a momentum optimizer keeps moving detached weights with their
momentum buffers (the launcher's `MaskedMomentum` does not). Plain SGD without momentum or weight
decay leaves detached structures exactly in place.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfgrow import cost as cost_lib
from tfgrow.growing.recurrent import reset_states
from tfgrow.growing.update import GrowthUpdate, check_relaxation, keras_step
from tfgrow.masks import Temperature
from tfgrow.train.errors import NonFiniteLossError


def inference_settings(network):
    """(temperature, epoch) of the network's inference: the run's while a GrowingCallback is
    attached, else those saved with the model (None: beta = 1)."""
    return network.inference_settings()


class GrowingCallback(keras.callbacks.Callback):
    """Trains a `tfgrow.grow` network with `model.fit` by the growing method (METHOD.md §1).

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

    Stateful LSTM/GRU layers are reset to zero states at the start of every epoch and of every
    evaluation inside `fit`, as the launcher does.

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
        check_relaxation(relaxation)
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
        self.update = None  # the GrowthUpdate of the current fit (on_train_begin)
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
            self.update = GrowthUpdate(
                model, temperature, int(steps), self.budget, self.relaxation, self.seed
            )
        # The model's training calls run this update; its inference and get_config follow its
        # temperatures (so they travel with model.save).
        model.growth_update = self.update
        if self.log_dir:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._start_time = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        reset_states(self.model)  # stateful LSTM/GRU streams restart with the epoch's data

    def on_test_begin(self, logs=None):
        reset_states(self.model)  # validation streams start from zero, as the launcher's

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

    def growth_logs(self):
        """Architecture H(s), its cost, lambda and the training-cost saving so far."""
        model = self.model
        widths, blocks = model.architecture()
        params, flops = cost_lib.count(model.layer_costs, widths, blocks)
        full_params, full_flops = model.full_cost()
        metric = self.budget.metric if self.budget is not None else "params"
        train_flops = self.update.read("train_flops")
        return {
            "budget_fraction": float(
                cost_lib.fraction(
                    model.layer_costs, widths, blocks, metric, getattr(model, "latency_table", None)
                )
            ),
            "lambda_channel": self.update.read("lambda_channel"),
            "lambda_layer": self.update.read("lambda_layer"),
            "params": int(params),
            "flops": int(flops),
            "params_fraction": float(params / full_params),
            "flops_fraction": float(flops / full_flops),
            "train_flops": train_flops,
            "train_cost_savings": self.update.read("train_flops_full") / max(train_flops, 1.0),
        }

    def _step(self):
        return int(keras_step(self.model).numpy())

    def _write(self, step, values, logs):
        if self._writer is None:
            return
        with self._writer.as_default(step=step):
            for key, value in {**logs, **values}.items():
                if isinstance(value, (int, float, np.integer, np.floating)):
                    tf.summary.scalar(f"fit/{key}", value)
