"""The training and evaluation pipelines of one run, as every trainer loads them.

`load_run_data` serves the growing trainer (`tfgrow.train.growing_run`), MorphNet
(`tfgrow.morphnet.run`) and the stock-Keras baselines (`tfgrow.train.plain`): the same splits,
batches, seeds and truncation, and the same refusal when the dataset is not prepared (mock data
only when asked).
"""

import tensorflow_datasets as tfds
from absl import logging

from tfgrow.data.datasets import DatasetNotFoundError, dataset_info, eval_split, load_dataset


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
        data_dir: tfds data directory (may be gs://), or None.
        batch_size: the global batch size.
        seed: seed of the training pipeline's shuffle and augmentation.
        max_train_examples, max_eval_examples: truncate the splits (None: all examples).
        mock_data_if_missing: when the dataset is not prepared locally, use random data of its
            shape (`tfds.testing.mock_data`, as many examples as the truncation asks for, at
            least two batches) instead of raising `DatasetNotFoundError`.

    Returns:
        (DatasetInfo, training dataset, evaluation dataset).
    """

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
    logging.warning(
        "Dataset %r is not prepared locally: training on RANDOM mock data of its shape "
        "(tfgrow.train.mock_data_if_missing=True). Results mean nothing.",
        dataset,
    )
    num_examples = max(max_train_examples or 0, max_eval_examples or 0, 2 * batch_size)
    with tfds.testing.mock_data(num_examples=num_examples):
        return load()
