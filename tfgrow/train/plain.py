"""Runs that train stock Keras models: MorphNet and the plain baselines (tfgrow/baselines/).

`PlainRun` is one such run set up from the `tfgrow.train.train` arguments: strategy, seed, the
train and test splits, steps per epoch.
`PlainRun.train` trains a stock Keras model with MorphNet's `Phase` (momentum SGD with L2 weight
decay on the run's learning-rate schedule), counting training FLOPs in a `Ledger`;
`PlainRun.write_summary` writes the contract keys of `summary.json` (README, "What a run writes").
"""

import os
import time

import keras
import tensorflow as tf

from tfgrow.data.run_data import load_run_data
from tfgrow.graph import counting
from tfgrow.morphnet import phase as phase_lib
from tfgrow.precision import policy_name
from tfgrow.train.run_directory import write_json, write_operative_config
from tfgrow.train.saving import save_model_atomically
from tfgrow.train.schedules import optimizer_learning_rate
from tfgrow.train.strategy import make_strategy

FINAL_MODEL_FILE = "final_model.keras"


class PlainRun:
    """One run on stock Keras models; arguments as `tfgrow.train.train`'s."""

    def __init__(
        self,
        model_dir,
        method,
        model_fn,
        dataset,
        epochs,
        global_batch_size,
        learning_rate,
        schedule,
        momentum,
        weight_decay,
        seed,
        data_dir,
        max_train_examples,
        max_eval_examples,
        log_every_steps,
        mock_data_if_missing,
        strategy,
        run_directory=None,
    ):
        if epochs <= 0 or global_batch_size <= 0:
            raise ValueError(
                f"Expected positive epochs and global_batch_size. Received: epochs={epochs}, "
                f"global_batch_size={global_batch_size}"
            )
        self.model_dir = model_dir
        self.method = method
        self.model_fn = model_fn
        self.dataset = dataset
        self.epochs = int(epochs)
        self.global_batch_size = int(global_batch_size)
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.seed = int(seed)
        self.log_every_steps = log_every_steps
        self.strategy = strategy or make_strategy()
        self.start_time = time.time()
        keras.utils.set_random_seed(self.seed)
        tf.io.gfile.makedirs(model_dir)
        if run_directory is not None:  # the `RunDirectory` tfgrow.train claimed
            run_directory.record()
        self.info, self.train_data, self.eval_data = load_run_data(
            dataset,
            data_dir,
            global_batch_size,
            seed,
            max_train_examples,
            max_eval_examples,
            mock_data_if_missing,
        )
        num_train = min(self.info.num_train, max_train_examples or self.info.num_train)
        self.steps_per_epoch = max(1, num_train // global_batch_size)
        self.dist_train = self.strategy.experimental_distribute_dataset(self.train_data)
        self.dist_eval = self.strategy.experimental_distribute_dataset(self.eval_data)

    def build(self, builder, *args, **kwargs):
        """`builder(*args, **kwargs)` under the strategy's scope (models, their variables)."""
        with self.strategy.scope():
            return builder(*args, **kwargs)

    def new_ledger(self, full_model):
        """A FLOPs `Ledger` whose reference is `full_model` trained for the same steps."""
        return phase_lib.Ledger(self.global_batch_size, counting.count_model(full_model)[1])

    def train(self, model, name, epochs, ledger, learning_rate=None):
        """Trains `model` for `epochs` epochs on the run's schedule; returns the last evaluation.

        Args:
            model: a stock Keras model built under the strategy's scope.
            name: the phase's name (TensorBoard directory `train/<name>`, console prefix).
            epochs: epochs of this phase; the schedule spans exactly them.
            ledger: the run's `Ledger` (steps, training FLOPs, traces).
            learning_rate: the schedule's base rate; None for `tfgrow.train.learning_rate`.
        """
        total_steps = self.steps_per_epoch * epochs
        base = self.learning_rate if learning_rate is None else learning_rate
        rate = optimizer_learning_rate(total_steps, base, self.schedule)
        phase = phase_lib.Phase(
            name,
            model,
            self.strategy,
            self.global_batch_size,
            rate,
            self.momentum,
            self.weight_decay,
            None,
            0.0,
            ledger,
        )
        return phase.fit(
            self.dist_train, self.dist_eval, epochs, self.model_dir, self.log_every_steps, 1
        )

    def train_from_scratch(self, model, full_model, architecture, blocks, **extra):
        """Trains `model` for the run's epochs, then `write_summary`; returns the summary."""
        ledger = self.new_ledger(full_model)
        evaluation = self.train(model, "train", self.epochs, ledger)
        return self.write_summary(
            model, full_model, ledger, evaluation, architecture, blocks, **extra
        )

    def write_summary(self, model, full_model, ledger, evaluation, architecture, blocks, **extra):
        """Saves the final model and writes `summary.json`; returns the summary dict.

        Args:
            model: the final stock Keras model (saved as `final_model.keras`).
            full_model: the full network the costs are measured against.
            ledger: the run's `Ledger`.
            evaluation: {"accuracy", "loss"} of the final model on the test split.
            architecture, blocks: the summary's `architecture` and `blocks`.
            **extra: further keys (the baseline's own record).
        """
        save_model_atomically(model, os.path.join(self.model_dir, FINAL_MODEL_FILE))
        params, flops = counting.count_model(model)
        params_full, flops_full = counting.count_model(full_model)
        summary = {
            "method": self.method,
            "model": full_model.name,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "steps": ledger.steps,
            "global_batch_size": self.global_batch_size,
            "eval_accuracy": float(evaluation["accuracy"]),
            "eval_loss": float(evaluation["loss"]),
            "params": params,
            "params_full": params_full,
            "flops": flops,
            "flops_full": flops_full,
            "train_flops": ledger.train_flops,
            "train_flops_full": ledger.train_flops_full,
            "train_cost_savings": ledger.train_flops_full / ledger.train_flops,
            "wall_time_s": time.time() - self.start_time,
            "architecture": architecture,
            "blocks": blocks,
            "num_compiles": ledger.num_traces,
            "dtype_policy": policy_name(model),
            **extra,
        }
        write_operative_config(self.model_dir)
        write_json(os.path.join(self.model_dir, "summary.json"), summary)
        return summary
