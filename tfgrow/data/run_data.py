"""The training and evaluation pipelines of one run, as every trainer loads them.

`load_run_data` serves the growing trainer (`tfgrow.train.growing_run`), MorphNet
(`tfgrow.morphnet.run`) and the stock-Keras baselines (`tfgrow.train.plain`): the same splits,
batches, seeds and truncation, and the same refusal when the dataset is not prepared (mock data
only when asked). Text corpora (`tfgrow.data.text`) give token streams; their runs also evaluate
the test split at the end (`load_test_data`).
"""

import tensorflow_datasets as tfds
from absl import logging

from tfgrow.data import text as text_lib
from tfgrow.data.datasets import dataset_info, eval_split, load_dataset
from tfgrow.data.info import DatasetNotFoundError


def load_run_data(
    dataset,
    data_dir,
    batch_size,
    seed,
    max_train_examples,
    max_eval_examples,
    mock_data_if_missing,
):
    """The dataset's info and its training and evaluation pipelines.

    Args:
        dataset: a dataset name (`tfgrow.train.dataset`).
        data_dir: tfds data directory (may be gs://), or None; a text corpus' directory.
        batch_size: the global batch size.
        seed: seed of the training pipeline's shuffle and augmentation.
        max_train_examples, max_eval_examples: truncate the splits (None: all examples; text:
            windows of `TextStreams.num_steps` tokens).
        mock_data_if_missing: when the dataset is not prepared locally, use random data of its
            shape (`tfds.testing.mock_data`, or random tokens for a text corpus; as many
            examples as the truncation asks for, at least two batches) instead of raising
            `DatasetNotFoundError`.

    Returns:
        (DatasetInfo, training dataset, evaluation dataset).
    """
    if text_lib.is_text_dataset(dataset):
        limits = {"train": max_train_examples, text_lib.EVAL_SPLIT: max_eval_examples}
        info, splits = _text_splits(
            dataset, data_dir, batch_size, seed, limits, mock_data_if_missing
        )
        return info, splits["train"], splits[text_lib.EVAL_SPLIT]

    def load():
        info = dataset_info(dataset, data_dir=data_dir)
        train_data = load_dataset(
            dataset,
            "train",
            batch_size=batch_size,
            data_dir=data_dir,
            seed=seed,
            max_examples=max_train_examples,
        )
        eval_data = load_dataset(
            dataset,
            eval_split(dataset),
            batch_size=batch_size,
            data_dir=data_dir,
            max_examples=max_eval_examples,
        )
        return info, train_data, eval_data

    try:
        return load()
    except DatasetNotFoundError:
        if not mock_data_if_missing:
            raise
    _warn_mock(dataset)
    num_examples = max(max_train_examples or 0, max_eval_examples or 0, 2 * batch_size)
    with tfds.testing.mock_data(num_examples=num_examples):
        return load()


def load_test_data(dataset, data_dir, batch_size, seed, max_examples, mock_data_if_missing):
    """The test split of a text corpus, batched as `load_run_data`'s evaluation split.

    Args:
        dataset: a text corpus of `tfgrow.data.text`.
        data_dir, batch_size, seed, mock_data_if_missing: as `load_run_data`.
        max_examples: truncate the split (windows; None: all).

    Returns:
        A `tf.data.Dataset` of `(inputs, targets)` batches.
    """
    limits = {"test": max_examples}
    _, splits = _text_splits(dataset, data_dir, batch_size, seed, limits, mock_data_if_missing)
    return splits["test"]


def _text_splits(dataset, data_dir, batch_size, seed, limits, mock_data_if_missing):
    """(DatasetInfo, split -> dataset) of a text corpus for the splits of `limits` (split ->
    max_examples); random tokens when the corpus is missing and mock data is allowed."""
    try:
        info = dataset_info(dataset, data_dir=data_dir)
        return info, {
            split: text_lib.load_text(
                dataset, split, batch_size=batch_size, data_dir=data_dir, max_examples=limit
            )
            for split, limit in limits.items()
        }
    except DatasetNotFoundError:
        if not mock_data_if_missing:
            raise
    _warn_mock(dataset)
    num_examples = max(*(limit or 0 for limit in limits.values()), 2 * batch_size)
    return text_lib.mock_text_info(num_examples), {
        split: text_lib.load_mock_text(
            split, batch_size=batch_size, max_examples=limit or num_examples, seed=seed
        )
        for split, limit in limits.items()
    }


def _warn_mock(dataset):
    logging.warning(
        "Dataset %r is not prepared locally: training on RANDOM mock data of its shape "
        "(tfgrow.train.mock_data_if_missing=True). Results mean nothing.",
        dataset,
    )
