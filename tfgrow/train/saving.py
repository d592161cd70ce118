"""Saving a Keras model so that a kill never leaves a half-written file under its final name."""

import os

import tensorflow as tf


def save_model_atomically(model, path):
    """model.save to a temporary name in the same directory, then rename over `path`."""
    temporary = os.path.join(os.path.dirname(path), ".tmp_" + os.path.basename(path))
    model.save(temporary)
    tf.io.gfile.rename(temporary, path, overwrite=True)
