"""Run checkpoints: what they hold, how they are written, and how a killed run resumes.

A checkpoint holds every variable of the model (weights, mask logits, counters, BN statistics)
and the trainer (step, lambdas, FLOP accumulators, optimiser velocities). Mask sampling is
stateless, keyed by seed and step, so restoring the step restores the sampling RNG. The data
order is the other piece of RNG state: the training pipeline reshuffles (and re-draws its
augmentation seeds) each time an iterator is created from it, so a run resumed at epoch k first
creates and drops k iterators (`skip_epochs`) and then sees epoch k's order exactly.

Writes are atomic where it matters: `tf.train.CheckpointManager` writes the data shards into a
`_temp` directory, merges them under the final prefix, and only then rewrites the `checkpoint`
state file (atomically, by rename). A kill at any moment therefore leaves the state file pointing
at the last complete checkpoint; a half-written one is never "latest". The `_temp` folder such a
kill leaves behind is removed when the run restarts. A state file that cannot be read, or
checkpoints without a state file, stop the run: restarting from step 0 would overwrite it.

`WallClock` keeps the run's wall time in its checkpoints, so `wall_time_s` adds up over resumes.
"""

import os
import time

import gin
import tensorflow as tf
from absl import logging

from tfgrow.errors import first_line


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored (corrupt, or from a different configuration)."""


def make_checkpoint(model, trainer):
    """Everything a resumed run needs: all model variables (weights, logits, counters, BN
    statistics) by path, and the trainer (step, lambdas, FLOP accumulators, optimiser slots).

    Keras 3 models are not tf.train trackables themselves, so their variables are listed.
    """
    variables = {variable.path.replace("/", "."): variable for variable in model.variables}
    return tf.train.Checkpoint(model_variables=variables, trainer=trainer)


class WallClock(tf.Module):
    """Wall time of a run over all its sessions: saved with each checkpoint, restored on resume.

    A session counts from its start; time after a session's last checkpoint (a killed run's lost
    epoch) is not counted, since the resumed run repeats that work.
    """

    def __init__(self):
        super().__init__(name="wall_clock")
        self.elapsed_s = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_s")
        self._earlier_s = 0.0
        self._session_start = time.time()

    def resumed(self):
        """Takes the earlier sessions' time from `elapsed_s` (call after restoring it)."""
        self._earlier_s = float(self.elapsed_s.numpy())

    def seconds(self):
        """Seconds of earlier sessions (up to their last checkpoint) plus this session's."""
        return self._earlier_s + time.time() - self._session_start

    def stamp(self):
        self.elapsed_s.assign(self.seconds())


@gin.configurable(module="tfgrow")
class RunCheckpoints:
    """The checkpoints of one run directory: restore on start, save every epoch.

    Args:
        checkpoint: the `tf.train.Checkpoint` (see `make_checkpoint`).
        directory: where checkpoints go (`model_dir/checkpoints`).
        max_to_keep: how many recent checkpoints to keep (older ones are deleted).
        fall_back: when the latest checkpoint cannot be read, resume from the newest earlier one
            that can (with a warning) instead of stopping. Safe to leave on for reruns: the run
            overwrites the bad checkpoint when it reaches that step again.
        restore_directory: where to resume from, when not `directory` (a multi-worker process
            that is not the chief saves to its own directory but resumes from the chief's).
        clock: a `WallClock` to save with every checkpoint and restore with it (optional).
        read_only: only restore (export): leave any temporary folder of a save in progress
            alone. Otherwise the `_temp` folders a killed save left are removed.

    Raises:
        CheckpointError: the resume directory's state file cannot be read, or it holds
            checkpoints but no state file.
    """

    def __init__(
        self,
        checkpoint,
        directory,
        max_to_keep=3,
        fall_back=False,
        restore_directory=None,
        clock=None,
        read_only=False,
    ):
        self.checkpoint = checkpoint
        self.directory = directory
        self.fall_back = fall_back
        self.clock = clock
        if clock is not None:
            checkpoint.wall_clock = clock
        check_state_file(restore_directory or directory)
        if not read_only:
            remove_temporary_folders(directory)
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep)
        self.reader = (
            self.manager
            if restore_directory in (None, directory)
            else tf.train.CheckpointManager(checkpoint, restore_directory, max_to_keep)
        )

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the latest checkpoint; returns its path (None: a fresh run).

        Raises:
            CheckpointError: naming the file, what went wrong, and how to fall back.
        """
        candidates = list(reversed(self.reader.checkpoints))
        for index, path in enumerate(candidates):
            try:
                self.restore_path(path)
            except CheckpointError as error:
                if not self.fall_back or index + 1 == len(candidates):
                    raise
                logging.warning("%s Falling back to %s.", error, candidates[index + 1])
                continue
            return path
        return None

    def restore_path(self, path):
        """Restores one checkpoint prefix (e.g. ".../ckpt-20") or raises `CheckpointError`."""
        if not tf.io.gfile.exists(path + ".index"):
            raise CheckpointError(
                f"Expected the checkpoint file {path}.index. Received: it does not exist. "
                + self._fallback_advice(path)
            )
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched().expect_partial()
        except AssertionError as error:
            raise CheckpointError(
                f"The checkpoint {path} does not match the model built from the gin config "
                f"({first_line(error)}). Resume with the configuration that wrote it "
                "(model_dir/operative_config.gin), or use a new --model_dir."
            ) from error
        except (tf.errors.OpError, IndexError, KeyError, ValueError) as error:
            raise CheckpointError(
                f"Could not restore the checkpoint {path}: {type(error).__name__}: "
                f"{first_line(error)}. Its files ({path}.index, {path}.data-*) look corrupt "
                "or truncated. " + self._fallback_advice(path)
            ) from error
        if self.clock is not None:
            self.clock.resumed()
        logging.info("Restored %s", path)

    def save(self, step):
        if self.clock is not None:
            self.clock.stamp()
        return self.manager.save(checkpoint_number=int(step))

    def _fallback_advice(self, path):
        earlier = [p for p in self.reader.checkpoints if _number(p) < _number(path)]
        if not earlier:
            return (
                "There is no earlier checkpoint to fall back to: delete "
                f"{self.directory} to start the run over."
            )
        return (
            f"To resume from the previous checkpoint ({earlier[-1]}) instead, run the same "
            "command again with --gin_bindings='tfgrow.RunCheckpoints.fall_back=True'."
        )


def check_state_file(directory):
    """Stops when `directory`'s checkpoints cannot be told apart from a fresh start.

    `tf.train.CheckpointManager` treats a state file it cannot parse as absent (with a warning),
    and a run would then restart from step 0 and overwrite its checkpoints.

    Raises:
        CheckpointError: the state file cannot be read, or there are checkpoints but no state
            file; the message names the newest checkpoint to write into a repaired state file.
    """
    state_file = os.path.join(directory, "checkpoint")
    prefixes = [
        path[: -len(".index")] for path in tf.io.gfile.glob(os.path.join(directory, "*.index"))
    ]
    newest = os.path.basename(max(prefixes, key=_number)) if prefixes else None
    repair = (
        f'write the line model_checkpoint_path: "{newest}" into {state_file} to resume from '
        f"{newest}, or delete {directory} to start the run over"
        if newest
        else f"delete {directory} to start the run over"
    )
    if tf.io.gfile.exists(state_file):
        try:
            readable = tf.train.get_checkpoint_state(directory) is not None
        except ValueError:
            readable = False
        if not readable:
            raise CheckpointError(
                f"Could not read the checkpoint state file {state_file} (corrupt or truncated), "
                "so the run cannot tell which checkpoint is its latest, and restarting from "
                f"step 0 would overwrite it. To continue, {repair}."
            )
    elif newest:
        raise CheckpointError(
            f"{directory} holds checkpoints ({newest} is the newest) but no state file "
            f"{state_file}, and restarting from step 0 would overwrite them. To continue, "
            f"{repair}."
        )


def remove_temporary_folders(directory):
    """Removes what a kill during a save leaves: `<prefix>_temp` shard folders and
    `checkpoint.tmp<hex>` state files (never a checkpoint or the state file itself)."""
    for path in tf.io.gfile.glob(os.path.join(directory, "*_temp")):
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
            logging.info("Removed %s, left by a run killed while saving a checkpoint", path)
    for path in tf.io.gfile.glob(os.path.join(directory, "checkpoint.tmp*")):
        tf.io.gfile.remove(path)


def skip_epochs(dataset, num_epochs):
    """Advances a reshuffling dataset past `num_epochs` epochs without reading them.

    Each iterator created from a dataset with `reshuffle_each_iteration` (and tfgrow's per-batch
    augmentation seeds, `rerandomize_each_iteration`) draws the next epoch's seeds when created,
    so creating and dropping k iterators makes the next one produce epoch k's batches.
    """
    for _ in range(num_epochs):
        iterator = iter(dataset)
        del iterator


def _number(path):
    try:
        return int(path.rsplit("-", 1)[-1])
    except ValueError:
        return -1
