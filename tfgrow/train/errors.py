"""Errors a training run raises, shared by every trainer (growing, `fit`, MorphNet, baselines).

Settings refused before any work are `tfgrow.train.validation.InputError`; a run directory that
holds another run is `tfgrow.train.run_directory.RunDirectoryError`; checkpoints that cannot be
restored are `tfgrow.train.checkpoint.CheckpointError`.
"""


class NonFiniteLossError(FloatingPointError):
    """Raised when a training step's loss is NaN or infinite."""
