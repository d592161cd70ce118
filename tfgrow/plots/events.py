"""Scalars of a run's TensorBoard event files, as numpy series."""

import os

import numpy as np
import tensorflow as tf


def read_scalars(log_dir):
    """Every scalar series under `log_dir` (event files of this directory and its subdirectories).

    A step logged twice (a resumed run repeats the steps after its last checkpoint) keeps the
    value written last. Image and text summaries are skipped; so is a half-written last record
    of a run that is still writing.

    Args:
        log_dir: a TensorBoard log directory, e.g. `model_dir/train`.

    Returns:
        dict tag -> (steps int64 array, values float64 array), sorted by step; {} when the
        directory holds no events yet.
    """
    series = {}
    for path in sorted(_event_files(log_dir), key=_file_order):
        for event in _events(path):
            for value in event.summary.value:
                number = _scalar(value)
                if number is not None:
                    series.setdefault(value.tag, {})[int(event.step)] = number
    result = {}
    for tag, by_step in series.items():
        steps = np.array(sorted(by_step), np.int64)
        result[tag] = (steps, np.array([by_step[s] for s in steps], np.float64))
    return result


def _event_files(log_dir):
    if not tf.io.gfile.isdir(log_dir):
        return []
    files = []
    for directory, _, names in tf.io.gfile.walk(log_dir):
        files += [os.path.join(directory, n) for n in names if "tfevents" in n]
    return files


def _events(path):
    """The events of one file; a running run's last record may be half written: stop there."""
    try:
        for record in tf.data.TFRecordDataset(path):
            yield tf.compat.v1.Event.FromString(record.numpy())
    except tf.errors.DataLossError:
        return


def _file_order(path):
    """Event files sort by their creation time stamp (the field after "tfevents.")."""
    name = os.path.basename(path)
    try:
        return (int(name.split("tfevents.")[1].split(".")[0]), name)
    except (IndexError, ValueError):
        return (0, name)


def _scalar(value):
    """The float of a scalar summary value, or None for images, text and histograms."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor"):
        return None
    array = tf.make_ndarray(value.tensor)
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        return None
    return float(array.reshape(()))
