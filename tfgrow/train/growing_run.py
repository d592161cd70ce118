"""One growing run of `tfgrow.train` (methods "grow", "full", "random"): the launcher's training.

Per step: sample, run the compact step, accumulate training FLOPs. Every `Budget.update_steps`
steps: refresh lambda from the cost of H(s). Per epoch: evaluate H(s) on the test split, log to
the console and TensorBoard, checkpoint. At the end: `summary.json`.

Language models (text corpora, `tfgrow.data.text`) evaluate on the validation split each epoch
and on the test split at the end, and report perplexity; their stateful layers start every
training epoch and every evaluation from a zero state.

`GrowingRun(settings, ...)` sets the run up (data, network, `Trainer`, XLA capacities,
checkpoints, resuming the latest one); `GrowingRun.train()` runs the remaining epochs and writes
the outputs.
"""

import math
import os
import time
import types

import keras
import tensorflow as tf
from absl import logging

from tfgrow import growing as growing_lib
from tfgrow.baselines import random_sampling
from tfgrow.budget import Budget
from tfgrow.data.run_data import load_run_data, load_test_data
from tfgrow.latency import LatencyTable
from tfgrow.masks import Temperature
from tfgrow.plots import run as plots_lib
from tfgrow.train import reporting
from tfgrow.train import strategy as strategy_lib
from tfgrow.train.capacity import CapacityPlanner
from tfgrow.train.checkpoint import RunCheckpoints, WallClock, make_checkpoint, skip_epochs
from tfgrow.train.errors import NonFiniteLossError
from tfgrow.train.methods import GROWING_METHODS
from tfgrow.train.progress import Progress, describe_run
from tfgrow.train.run_directory import write_json, write_operative_config
from tfgrow.train.schedules import learning_rate_schedule
from tfgrow.train.step_timing import architecture_step_times
from tfgrow.train.trainer import Trainer


class GrowingRun:
    """A growing, full-width or random-sampling run, set up and resumed from its checkpoint.

    Args:
        settings: `tfgrow.train`'s arguments by name (see its docstring), with `model_fn` the
            checked builder and `strategy` the strategy to run under.
        run_directory: the `RunDirectory` `tfgrow.train` claimed; recorded once set up.
    """

    def __init__(self, settings, run_directory):
        self.settings = settings = types.SimpleNamespace(**settings)
        self.strategy = strategy = settings.strategy
        self.growing = settings.method in GROWING_METHODS
        self.budget = Budget()
        self.temperature = Temperature(
            settings.beta0,
            settings.final_temperature,
            settings.temperature_mode,
            float(settings.epochs),
        )
        keras.utils.set_random_seed(settings.seed)
        info, train_data, eval_data = load_run_data(
            settings.dataset,
            settings.data_dir,
            settings.global_batch_size,
            settings.seed,
            settings.max_train_examples,
            settings.max_eval_examples,
            settings.mock_data_if_missing,
        )
        self.language_model = info.language_model
        num_train = min(info.num_train, settings.max_train_examples or info.num_train)
        self.steps_per_epoch = max(1, num_train // settings.global_batch_size)
        self.train_data = train_data
        with strategy.scope():
            self.model, self.trainer = self._network_and_trainer(info)
        if self.growing and self.budget.metric == "latency":
            self.model.latency_table = self._latency_table()
        self.planner = self._capacity_planner()
        # The chief writes to model_dir; other multi-worker processes to model_dir/workers/<task>
        # and resume from the chief's checkpoints.
        self.write_dir = strategy_lib.output_dir(strategy, settings.model_dir)
        tf.io.gfile.makedirs(self.write_dir)
        self.clock = WallClock()  # checkpointed: wall_time_s adds up over resumes
        self.checkpoints = RunCheckpoints(
            make_checkpoint(self.model, self.trainer),
            os.path.join(self.write_dir, "checkpoints"),
            restore_directory=os.path.join(settings.model_dir, "checkpoints"),
            clock=self.clock,
        )
        self._resume()
        write_operative_config(self.write_dir)
        run_directory.record()
        self.dist_train = strategy.experimental_distribute_dataset(train_data)
        self.dist_eval = strategy.experimental_distribute_dataset(eval_data)
        self.dist_test = None  # a language model's test split, evaluated at the end
        if self.language_model:
            test_data = load_test_data(
                settings.dataset,
                settings.data_dir,
                settings.global_batch_size,
                settings.seed,
                settings.max_eval_examples,
                settings.mock_data_if_missing,
            )
            self.dist_test = strategy.experimental_distribute_dataset(test_data)

    def _network_and_trainer(self, info):
        """The network of `model_fn` and its `Trainer` (called under the strategy's scope)."""
        settings = self.settings
        model = settings.model_fn(
            info.input_shape,
            info.num_classes,
            growing=self.growing,
            **info.model_arguments(settings.global_batch_size),
        )
        model.channel_multiple = int(settings.channel_multiple)
        mask_learning_rate = settings.mask_learning_rate
        if settings.method == "random":  # every structure drawn with one fixed p; logits frozen
            probability = random_sampling.random_probability(
                model, self.budget.target, self.budget.metric
            )
            random_sampling.prepare(model, probability, settings.seed)
            mask_learning_rate = 0.0
        total_steps = self.steps_per_epoch * settings.epochs
        weight_schedule = learning_rate_schedule(
            total_steps,
            settings.learning_rate,
            settings.schedule,
            steps_per_epoch=self.steps_per_epoch,
        )
        mask_schedule = (
            weight_schedule
            if mask_learning_rate is None
            else learning_rate_schedule(
                total_steps,
                mask_learning_rate,
                settings.schedule,
                steps_per_epoch=self.steps_per_epoch,
            )
        )
        trainer = Trainer(
            model,
            self.strategy,
            settings.global_batch_size,
            self.steps_per_epoch,
            weight_schedule,
            mask_schedule,
            self.temperature,
            settings.momentum,
            settings.weight_decay,
            mask_momentum=settings.mask_momentum,
            relaxation=settings.relaxation,
            seed=settings.seed,
            budget=self.budget,
            jit_compile=settings.jit_compile,
            gradient_clip_norm=settings.gradient_clip_norm,
        )
        return model, trainer

    def _latency_table(self):
        """The latency budget's table, measured (or read from the device's cache) and calibrated
        on this device at the per-replica batch size (`tfgrow.latency`)."""
        replicas = self.strategy.num_replicas_in_sync
        images, labels = next(iter(self.train_data))
        batch = (images[: len(images) // replicas], labels[: len(labels) // replicas])
        start = time.time()
        table = LatencyTable(
            self.model.layer_costs, len(batch[0]), keras.config.dtype_policy().compute_dtype
        )
        scale, overhead = table.calibrate(self.model, batch)
        logging.info(
            "Latency table: %d layers, %d entries measured in %.0f s (others from %s); "
            "predicted step: full network %.1f ms (measured %.1f ms), scale %.2f, overhead "
            "%.1f ms",
            len(table.layers),
            table.measured,
            time.time() - start,
            table.cache_path,
            1000.0 * table.predict(table.full_widths()),
            1000.0 * table.calibration["measured"]["full"],
            scale,
            1000.0 * overhead,
        )
        return table

    def _capacity_planner(self):
        """The XLA capacities' planner when groups run at static capacities, else None."""
        settings = self.settings
        static_capacities = settings.static_capacities
        if static_capacities is None:
            # XLA needs static shapes; TPUStrategy compiles with XLA whatever jit_compile says.
            static_capacities = settings.jit_compile or isinstance(
                self.strategy, tf.distribute.TPUStrategy
            )
        if not (static_capacities and self.growing):
            return None
        return CapacityPlanner(
            self.model, self.temperature, settings.capacity_sigmas, settings.capacity_headroom
        )

    def _resume(self):
        """Restores the latest checkpoint, if any (weights, logits, counters, step, capacities)."""
        restored = self.checkpoints.restore()
        if restored:
            logging.info("Resumed from %s at step %d", restored, int(self.trainer.read("step")))
            if self.planner:
                state = tf.convert_to_tensor(self.trainer.capacity_state).numpy()
                self.planner.load_state(state)

    def train(self):
        """Trains the epochs not yet done, writes `summary.json` and the plots; the summary."""
        settings, trainer = self.settings, self.trainer
        describe_run(
            settings.method,
            self.model.name,
            settings.dataset,
            settings.epochs,
            self.steps_per_epoch,
            settings.global_batch_size,
            self.strategy.num_replicas_in_sync,
        )
        progress = Progress(settings.epochs, self.steps_per_epoch, settings.log_every_steps)
        writer = tf.summary.create_file_writer(os.path.join(self.write_dir, "train"))
        start_time = time.time()
        start_epoch = int(trainer.read("step")) // self.steps_per_epoch
        skip_epochs(self.dist_train, start_epoch)  # a resumed epoch sees its data order again
        evaluation = {}
        step = trainer.read("step")  # mirrored on the host; no device read per step
        if self.growing:
            reporting.log_architecture(writer, self.model, trainer, self.budget, step)
        for epoch in range(start_epoch, settings.epochs):
            totals, step = self._train_epoch(epoch, step, writer, progress)
            evaluation = self.evaluate()
            if self.planner:
                trainer.capacity_state.assign(self.planner.state())
            self.checkpoints.save(trainer.read("step"))
            values = reporting.log_epoch(writer, self.model, trainer, totals, evaluation)
            elapsed = time.time() - start_time
            progress.end_epoch(epoch, int(trainer.read("step")), values, elapsed)
            if self.growing:
                reporting.log_architecture(writer, self.model, trainer, self.budget, step)
                plots_lib.log_run_images(writer, self.write_dir, step)
        if not evaluation:  # killed after the last checkpoint, before summary.json
            evaluation = self.evaluate()
        return self._finish(evaluation)

    def _train_epoch(self, epoch, step, writer, progress):
        """One epoch of training steps; (loss/accuracy totals, the step after it)."""
        trainer, planner = self.trainer, self.planner
        totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        capacities = planner.plan(epoch) if planner else None
        growing_lib.reset_states(self.model)  # stateful layers start each epoch from zero
        progress.start_epoch(epoch)
        for batch in self.dist_train:
            results = {k: v.numpy() for k, v in trainer.train_step(batch, capacities).items()}
            if planner:
                planner.observe(results)
            if not math.isfinite(results["loss_sum"]):
                raise NonFiniteLossError(
                    f"Non-finite training loss at step {step} (epoch {epoch}): "
                    f"{results['loss_sum']}. Stopped before saving: the last good checkpoint "
                    f"is {self.checkpoints.latest or 'none (no epoch finished)'}. Lower the "
                    f"learning rate (received learning_rate={self.settings.learning_rate}) or "
                    "check the input data."
                )
            for key in totals:
                totals[key] += results[key]
            step += 1
            details = None
            if step % self.settings.log_every_steps == 0:
                details = reporting.log_step(
                    writer, self.model, trainer, self.budget, step, results
                )
                if self.growing:
                    reporting.log_architecture(writer, self.model, trainer, self.budget, step)
            progress.update(int(step), reporting.step_values(results), details)
        return totals, step

    def evaluate(self, dist_data=None):
        """Accuracy and loss (language models: and perplexity) of H(s) on the evaluation
        split, or on `dist_data`; stateful layers start from zero."""
        capacities = self.planner.eval_capacities() if self.planner else None
        growing_lib.reset_states(self.model)
        data = self.dist_eval if dist_data is None else dist_data
        result = evaluate(self.trainer, data, capacities)
        if self.language_model:  # exp of the mean cross-entropy per token
            result["perplexity"] = reporting.perplexity(result["loss"])
        return result

    def _finish(self, evaluation):
        """Writes `summary.json` and the plots; drops a non-chief worker's checkpoints."""
        settings, planner = self.settings, self.planner
        run = {
            "method": settings.method,
            "dataset": settings.dataset,
            "epochs": settings.epochs,
            "global_batch_size": settings.global_batch_size,
            "num_replicas": self.strategy.num_replicas_in_sync,
            "jit_compile": bool(settings.jit_compile),
            "dtype_policy": settings.dtype_policy,
        }
        if planner:
            run["capacity_overflows"] = planner.overflow_steps
            run["capacity_dropped"] = planner.dropped
            run["capacities"] = planner.history[-1] if planner.history else {}
        wall_time = self.clock.seconds()  # training and evaluation, not the timing below
        table = getattr(self.model, "latency_table", None)
        if table is not None:  # the latency budget's prediction for H(s) and the full network
            widths, blocks = self.model.architecture()
            run["latency_predicted_s"] = float(table.predict(widths, blocks))
            run["latency_predicted_full_s"] = float(table.predict(table.full_widths()))
        run.update(self._step_times())
        summary = reporting.summary(
            self.model, self.trainer, self.budget, run, evaluation, wall_time
        )
        if self.dist_test is not None:
            summary.update(reporting.test_summary(self.evaluate(self.dist_test)))
        write_json(os.path.join(self.write_dir, "summary.json"), summary)
        if self.growing:
            plots_lib.write_run_plots(self.write_dir)  # write_dir/plots/*.png
        if self.write_dir != settings.model_dir:  # only the chief's checkpoints are kept
            tf.io.gfile.rmtree(os.path.join(self.write_dir, "checkpoints"))
        return summary

    def _step_times(self):
        """`summary.json`'s measured step times of H(s) and of the full network (chief only)."""
        steps = self.settings.step_timing_steps
        if not steps or self.write_dir != self.settings.model_dir:
            return {}
        if isinstance(self.strategy, tf.distribute.TPUStrategy):
            return {}  # stock Keras steps outside the TPU strategy would time the host CPU
        batch = next(iter(self.train_data))
        epoch = float(self.trainer.read("step")) / self.steps_per_epoch
        return architecture_step_times(self.model, batch, self.temperature, epoch, steps)


def evaluate(trainer, dist_eval, capacities=None):
    """Accuracy and loss of H(s) over a distributed dataset."""
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for batch in dist_eval:
        for key, value in trainer.eval_step(batch, capacities).items():
            totals[key] += float(value)
    count = max(totals["count"], 1.0)
    return {"accuracy": totals["correct"] / count, "loss": totals["loss_sum"] / count}
