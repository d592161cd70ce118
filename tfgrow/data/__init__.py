"""Offline datasets as `tf.data` pipelines: image classification, and word-level language
modelling (`tfgrow.data.text`)."""

from tfgrow.data.crops import ImageCrops
from tfgrow.data.datasets import (
    DATASETS,
    DatasetSpec,
    dataset_info,
    dataset_spec,
    eval_split,
    load_arrays,
    load_dataset,
)
from tfgrow.data.info import DatasetInfo, DatasetNotFoundError
from tfgrow.data.text import TEXT_DATASETS, TextStreams, load_corpus, load_text

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DatasetSpec",
    "ImageCrops",
    "TEXT_DATASETS",
    "TextStreams",
    "dataset_info",
    "dataset_spec",
    "eval_split",
    "load_arrays",
    "load_corpus",
    "load_dataset",
    "load_text",
]
