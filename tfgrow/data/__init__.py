"""Offline image-classification datasets as `tf.data` pipelines."""

from tfgrow.data.crops import ImageCrops
from tfgrow.data.datasets import (
    DATASETS,
    DatasetInfo,
    DatasetNotFoundError,
    DatasetSpec,
    dataset_info,
    dataset_spec,
    eval_split,
    load_arrays,
    load_dataset,
)

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatasetSpec",
    "ImageCrops",
    "dataset_info",
    "dataset_spec",
    "eval_split",
    "load_arrays",
    "load_dataset",
]
