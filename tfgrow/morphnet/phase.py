"""Training one MorphNet phase (a shrink or the final training) under a tf.distribute strategy.

Momentum SGD (Keras, gradients all-reduced over replicas) on `task loss + weight_decay / 2 ||w||^2
+ strength * G`, with G from a `GammaRegularizer` (None: no regulariser). Per epoch: evaluation,
console and TensorBoard logs (loss, accuracy, regulariser value, alive cost fraction).
Under a mixed dtype policy the model computes in bfloat16 or float16; outputs and loss are
float32, and `mixed_float16` wraps the optimiser in Keras' `LossScaleOptimizer`.
"""

import math
import os
import time

import keras
import tensorflow as tf

import tfgrow.conv_ops  # noqa: F401  (installs the oneDNN#6035 gradient guard)
from tfgrow import cost as cost_lib
from tfgrow.graph import counting
from tfgrow.precision import LOSS_SCALED_POLICY, policy_name, to_float32
from tfgrow.train.errors import NonFiniteLossError
from tfgrow.train.progress import Progress, steps_per_epoch_of


class Ledger:
    """Steps, training FLOPs and traces over every phase of a run."""

    def __init__(self, global_batch_size, seed_flops):
        self.global_batch_size = global_batch_size
        self.seed_step_flops = cost_lib.training_flops(seed_flops, global_batch_size)
        self.steps = 0
        self.train_flops = 0
        self.train_flops_full = 0
        self.num_traces = 0

    def add_steps(self, count, forward_flops):
        self.steps += count
        self.train_flops += count * cost_lib.training_flops(forward_flops, self.global_batch_size)
        self.train_flops_full += count * self.seed_step_flops

    def state(self):
        """The counters, for a checkpoint (`load` restores them)."""
        names = ("steps", "train_flops", "train_flops_full", "num_traces")
        return {name: getattr(self, name) for name in names}

    def load(self, state):
        for name, value in state.items():
            setattr(self, name, value)


class Phase:
    """Trains one Keras model with momentum SGD (+ L2 weight decay, + strength * G)."""

    def __init__(
        self,
        name,
        model,
        strategy,
        global_batch_size,
        learning_rate,
        momentum,
        weight_decay,
        regularizer,
        strength,
        ledger,
    ):
        self.name = name
        self.model = model
        self.strategy = strategy
        self.global_batch_size = global_batch_size
        self.regularizer = regularizer
        self.strength = float(strength)
        self.weight_decay = float(weight_decay)
        self.ledger = ledger
        self.forward_flops = counting.count_model(model)[1]
        self.from_logits = not _outputs_probabilities(model)
        with strategy.scope():
            self.optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
            if policy_name(model) == LOSS_SCALED_POLICY:  # float16 gradients underflow
                self.optimizer = keras.mixed_precision.LossScaleOptimizer(self.optimizer)
            self.optimizer.build(model.trainable_variables)
        self.train_step = tf.function(self._train_step)
        self.eval_step = tf.function(self._eval_step)

    def _losses(self, labels, outputs):
        return keras.losses.sparse_categorical_crossentropy(
            labels, outputs, from_logits=self.from_logits
        )

    def _train_step(self, batch):
        self.ledger.num_traces += 1  # Python side effect: counts traces, not calls
        results = self.strategy.run(self._replica_train_step, args=batch)
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in results.items()
        }

    def _replica_train_step(self, images, labels):
        variables = self.model.trainable_variables
        num_replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            outputs = to_float32(self.model(images, training=True))
            per_example = self._losses(labels, outputs)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
            decay = 0.5 * self.weight_decay * tf.add_n([tf.reduce_sum(v * v) for v in variables])
            penalty = tf.zeros([])
            if self.regularizer is not None:
                penalty = self.regularizer.regularization_term()
            loss = loss + (decay + self.strength * penalty) / num_replicas
            scaled_loss = self.optimizer.scale_loss(loss)  # the loss itself unless loss-scaled
        gradients = tape.gradient(scaled_loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        metrics = _metrics(labels, outputs, per_example)
        metrics["penalty"] = penalty / num_replicas
        return metrics

    def _eval_step(self, batch):
        results = self.strategy.run(self._replica_eval_step, args=batch)
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
            for key, value in results.items()
        }

    def _replica_eval_step(self, images, labels):
        outputs = to_float32(self.model(images, training=False))
        return _metrics(labels, outputs, self._losses(labels, outputs))

    def evaluate(self, dist_eval):
        totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        for batch in dist_eval:
            for key, value in self.eval_step(batch).items():
                totals[key] += float(value)
        count = max(totals["count"], 1.0)
        return {"accuracy": totals["correct"] / count, "loss": totals["loss_sum"] / count}

    def fit(
        self,
        dist_train,
        dist_eval,
        epochs,
        model_dir,
        log_every_steps,
        seed_cost,
        on_epoch=None,
        initial_epoch=0,
        evaluation=None,
    ):
        """Trains up to `epochs` epochs; logs to the console and TensorBoard.

        Args:
            on_epoch: called as `on_epoch(epoch, evaluation)` after each epoch's evaluation.
            initial_epoch: epochs already trained (a resumed phase, restored from a checkpoint).
            evaluation: the last finished epoch's evaluation, when resumed.

        Returns:
            The last epoch's evaluation.
        """
        writer = tf.summary.create_file_writer(os.path.join(model_dir, "train", self.name))
        start = time.time()
        evaluation = evaluation or {}
        step = int(self.optimizer.iterations.numpy())  # 0, or where a resumed phase stopped
        steps_per_epoch = steps_per_epoch_of(dist_train) or 1
        progress = Progress(epochs, steps_per_epoch, log_every_steps, name=self.name)
        for epoch in range(initial_epoch + 1, epochs + 1):
            totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
            progress.start_epoch(epoch - 1)
            for batch in dist_train:
                results = {k: float(v) for k, v in self.train_step(batch).items()}
                if not math.isfinite(results["loss_sum"]):
                    raise _non_finite_loss(self.name, step, results["loss_sum"])
                for key in totals:
                    totals[key] += results[key]
                step += 1
                self.ledger.add_steps(1, self.forward_flops)
                details = None
                if step % log_every_steps == 0:
                    details = self._log_step(writer, step, results, seed_cost)
                count = max(results["count"], 1.0)
                values = {
                    "loss": results["loss_sum"] / count,
                    "train_acc": results["correct"] / count,
                }
                progress.update(step, values, details)
            evaluation = self.evaluate(dist_eval)
            count = max(totals["count"], 1.0)
            values = {
                "train_loss": totals["loss_sum"] / count,
                "train_acc": totals["correct"] / count,
                "eval_acc": evaluation["accuracy"],
            }
            if self.regularizer is not None:
                fraction = self._cost_fraction(seed_cost)
                values["alive_cost"] = f"{100.0 * fraction:.1f}%"
            progress.end_epoch(epoch - 1, step, values, time.time() - start)
            with writer.as_default(step=step):
                tf.summary.scalar("eval/accuracy", evaluation["accuracy"])
                tf.summary.scalar("eval/loss", evaluation["loss"])
                if self.regularizer is not None:
                    tf.summary.scalar("morphnet/alive_cost_fraction", fraction)
            writer.flush()
            if on_epoch is not None:
                on_epoch(epoch, evaluation)
        return evaluation

    def _cost_fraction(self, seed_cost):
        return float(self.regularizer.cost()) / seed_cost

    def _log_step(self, writer, step, results, seed_cost):
        """Writes a step's TensorBoard scalars; returns the console's extra values."""
        count = max(results["count"], 1.0)
        loss, accuracy = results["loss_sum"] / count, results["correct"] / count
        details = {}
        if self.regularizer is not None:
            fraction = self._cost_fraction(seed_cost)
            details = {"regularizer": f"{results['penalty']:.4g}", "alive_cost": fraction}
        with writer.as_default(step=step):
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("train/accuracy", accuracy)
            if self.regularizer is not None:
                tf.summary.scalar("morphnet/regularizer", results["penalty"])
                tf.summary.scalar("morphnet/alive_cost_fraction", fraction)
        return details


def _non_finite_loss(phase, step, value):
    return NonFiniteLossError(
        f"Non-finite training loss in {phase} at step {step}: {value}. Lower the learning rate "
        "or tfgrow.MorphNet.strength, or check the input data."
    )


def _metrics(labels, outputs, per_example):
    labels = tf.cast(labels, tf.int64)
    correct = tf.cast(tf.equal(tf.argmax(outputs, axis=-1), labels), tf.float32)
    return {
        "loss_sum": tf.reduce_sum(per_example),
        "correct": tf.reduce_sum(correct),
        "count": tf.cast(tf.size(labels), tf.float32),
    }


def _outputs_probabilities(model):
    """True when the model ends in a softmax (keras.applications heads), False for logits."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax" or isinstance(
        last, keras.layers.Softmax
    )
