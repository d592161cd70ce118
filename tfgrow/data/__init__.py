"""Offline image-classification datasets as `tf.data` pipelines."""

from tfgrow.data.datasets import (
    DatasetInfo,
    DatasetNotFoundError,
    dataset_info,
    load_arrays,
    load_dataset,
)

__all__ = [
    "DatasetInfo",
    "DatasetNotFoundError",
    "dataset_info",
    "load_arrays",
    "load_dataset",
]
