"""The console of a training run: where it writes, what it runs, and how far it has come.

On a terminal (stdout is a TTY) each epoch gets a Keras progress bar (`keras.utils.Progbar`,
as `model.fit` shows it); in a log file, one line every `log_every_steps` steps. Both give the
step out of the run's total, the epoch out of the total and an estimated time left:

    epoch 2/12  step 620/5616  loss 0.4012  train_acc 0.8594  ...  3.1 steps/s  ETA 0:26:52

The estimate is the remaining steps times the mean time per step since the first step of this
process (the first step, which traces and compiles, is not counted; evaluation time is).
"""

import datetime
import numbers
import sys
import time

import keras
from absl import logging


def format_duration(seconds):
    """'H:MM:SS' for a number of seconds (rounded); '?' when unknown."""
    if seconds is None:
        return "?"
    return str(datetime.timedelta(seconds=int(round(max(seconds, 0.0)))))


def format_values(values):
    """'name value' pairs joined by two spaces; floats with 4 decimals, the rest as they are."""
    parts = []
    for name, value in values.items():
        is_float = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
        text = f"{float(value):.4f}" if is_float else str(value)
        parts.append(f"{name} {text}")
    return "  ".join(parts)


def steps_per_epoch_of(dataset):
    """Batches per pass of a (distributed) dataset, or None when tf.data cannot tell."""
    try:
        cardinality = dataset.cardinality
        cardinality = int(cardinality() if callable(cardinality) else cardinality)
    except (AttributeError, TypeError, ValueError):
        return None
    return cardinality if cardinality > 0 else None


def describe_run(method, model_name, dataset, num_epochs, steps_per_epoch, batch, replicas):
    """Logs what a run will do: method, model, data, epochs, steps and batch."""
    logging.info(
        "%s %s on %s: %d epoch%s x %d steps = %d steps, global batch %d (%d replica%s)",
        method,
        model_name,
        dataset,
        num_epochs,
        "" if num_epochs == 1 else "s",
        steps_per_epoch,
        num_epochs * steps_per_epoch,
        batch,
        replicas,
        "" if replicas == 1 else "s",
    )


class Progress:
    """Progress of one training loop, on a terminal or in a log.

    Args:
        num_epochs: epochs of the loop (M in "epoch N/M").
        steps_per_epoch: steps of one epoch; the total is `num_epochs * steps_per_epoch`.
        log_every_steps: in a log, one line every this many steps.
        name: prefix of every line (e.g. a MorphNet phase), or "".
        interactive: draw progress bars; None when stdout is a terminal.
    """

    def __init__(self, num_epochs, steps_per_epoch, log_every_steps, name="", interactive=None):
        self.num_epochs = int(num_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = self.num_epochs * self.steps_per_epoch
        self.log_every_steps = int(log_every_steps)
        self.prefix = f"{name} " if name else ""
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self._bar = None
        self._timer_step = None  # the step at which timing started (after the first step)
        self._timer_start = None
        self._rate = None

    def _epoch_of(self, step):
        return min(max(step - 1, 0) // self.steps_per_epoch + 1, self.num_epochs)

    def start_epoch(self, epoch):
        """Begins epoch `epoch` (0-based); on a terminal, prints 'Epoch N/M' and a new bar."""
        if self.interactive:
            print(f"{self.prefix}Epoch {epoch + 1}/{self.num_epochs}", flush=True)
            self._bar = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=None)

    def eta_seconds(self, step):
        """Estimated seconds left after global step `step`; None until two steps are timed."""
        now = time.perf_counter()
        if self._timer_step is None:
            self._timer_step, self._timer_start = step, now
            return None
        if step <= self._timer_step:
            return None
        seconds_per_step = (now - self._timer_start) / (step - self._timer_step)
        self._rate = 1.0 / seconds_per_step if seconds_per_step > 0 else None
        return seconds_per_step * (self.total_steps - step)

    def update(self, step, values, details=None):
        """Reports the end of global step `step` (1-based).

        Args:
            step: steps done in the whole run.
            values: this step's numbers for the bar (e.g. loss, train_acc).
            details: more values for the log line; a log line is written only at steps where
                they are given (every `log_every_steps`).
        """
        eta = self.eta_seconds(step)
        if self.interactive:
            within = step - (self._epoch_of(step) - 1) * self.steps_per_epoch
            if self._bar is not None:
                self._bar.update(within, [(k, v) for k, v in values.items()])
            return
        if details is None:
            return
        rate = f"  {self._rate:.2f} steps/s" if self._rate else ""
        logging.info(
            "%sepoch %d/%d  step %d/%d  %s%s  ETA %s",
            self.prefix,
            self._epoch_of(step),
            self.num_epochs,
            step,
            self.total_steps,
            format_values({**values, **details}),
            rate,
            format_duration(eta),
        )

    def end_epoch(self, epoch, step, values, elapsed):
        """Reports a finished epoch (0-based `epoch`) with its evaluation and the time left."""
        eta = self.eta_seconds(step) if step < self.total_steps else 0.0
        line = (
            f"{self.prefix}epoch {epoch + 1}/{self.num_epochs} done  step {step}/"
            f"{self.total_steps}  {format_values(values)}  elapsed {format_duration(elapsed)}  "
            f"ETA {format_duration(eta)}"
        )
        self._bar = None
        if self.interactive:
            print(line, flush=True)
        else:
            logging.info("%s", line)
