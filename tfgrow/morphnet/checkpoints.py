"""MorphNet run checkpoints: after every epoch of every phase, resumed like a growing run.

A MorphNet run trains several networks in turn (shrink phases at different widths, then the final
training), so a checkpoint holds the network and optimiser of the phase running when it was
saved, plus the run's progress as one JSON string: which phase, how many of its epochs are done,
the epochs run over all phases (the data order to skip to), the widths the phase's network was
built at, the finished iterations, the last evaluation and the FLOPs ledger. Resuming reads the
progress first (the network to build depends on it), then builds that phase's network and
restores it from the same checkpoint. Saving, restoring, corrupt files, the fall-back, leftover
temporary folders and the wall clock are `tfgrow.train.checkpoint.RunCheckpoints`'.
"""

import json

import numpy as np
import tensorflow as tf

from tfgrow.train.checkpoint import RunCheckpoints, make_checkpoint


class RunProgress(tf.Module):
    """A MorphNet run's progress (a JSON dict) as a string variable saved with the checkpoint."""

    def __init__(self):
        super().__init__(name="progress")
        self.state = tf.Variable("", dtype=tf.string, trainable=False, name="state")

    def read(self):
        """The progress dict restored from a checkpoint, or None before any."""
        text = self.state.numpy().decode("utf-8")
        return json.loads(text) if text else None

    def write(self, payload):
        self.state.assign(json.dumps(payload, sort_keys=True, default=_plain))


class PhaseCheckpoints:
    """The checkpoints of a MorphNet run directory, for whichever phase is running.

    Args:
        directory: `model_dir/checkpoints`.
        clock: the run's `WallClock`, saved and restored with every checkpoint.
    """

    def __init__(self, directory, clock):
        self.directory = directory
        self.clock = clock
        self.progress = RunProgress()
        self.resume_path = None
        self.current = None

    def restore_progress(self):
        """Restores the latest checkpoint's progress; returns it (None: a fresh run).

        Raises:
            CheckpointError: as `RunCheckpoints.restore` (unreadable state file, corrupt files).
        """
        holder = tf.Module()
        holder.progress = self.progress
        checkpoints = RunCheckpoints(
            tf.train.Checkpoint(trainer=holder), self.directory, clock=self.clock
        )
        self.resume_path = checkpoints.restore()
        return self.progress.read() if self.resume_path else None

    def attach(self, phase, resume):
        """Checkpoints `phase` from now on; restores it from the resumed checkpoint if `resume`.

        Args:
            phase: the running `tfgrow.morphnet.phase.Phase` (its model and optimiser).
            resume: whether the resumed checkpoint was saved during this phase.
        """
        holder = tf.Module()
        holder.progress = self.progress
        holder.optimizer_variables = {
            f"{index:04d}.{variable.path.replace('/', '.')}": variable
            for index, variable in enumerate(phase.optimizer.variables)
        }
        self.current = RunCheckpoints(
            make_checkpoint(phase.model, holder), self.directory, clock=self.clock
        )
        if resume:
            self.current.restore_path(self.resume_path)

    def save(self, payload, step):
        """Saves the attached phase with the run's progress `payload`, numbered `step`."""
        self.progress.write(payload)
        return self.current.save(step)


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"Cannot write {type(value).__name__} into a MorphNet run's progress")
