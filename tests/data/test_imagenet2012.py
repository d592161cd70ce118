"""tfds `imagenet2012` through `tfgrow.data` on `tfds.testing.mock_data` (nothing downloads)."""

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.fixtures.processes import REPO
from tfgrow import data
from tfgrow.data import crops as crops_lib
from tfgrow.data import datasets
from tfgrow.data.run_data import load_run_data
from tfgrow.train.checkpoint import skip_epochs

SIZE = 40
CROPS = data.ImageCrops(image_size=SIZE)
MEAN, STD = datasets.IMAGENET_MEAN_STD


@pytest.fixture
def empty_dir(tmp_path):
    return str(tmp_path)


@pytest.fixture
def gin_config():
    yield
    gin.clear_config()


def collect(ds):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return np.concatenate(images), np.concatenate(labels)


def load(split, data_dir, **kwargs):
    return data.load_dataset("imagenet2012", split, data_dir=data_dir, crops=CROPS, **kwargs)


def test_split_names_come_from_one_table():
    assert data.eval_split("imagenet2012") == "validation"
    for name in ("fashion_mnist", "mnist", "cifar10", "cifar100", "svhn_cropped"):
        assert data.eval_split(name) == "test"
    assert {spec.train_split for spec in data.DATASETS.values()} == {"train"}


def test_dataset_info_has_the_configured_crop_size(gin_config):
    info = data.dataset_info("imagenet2012", crops=CROPS)
    assert info == data.DatasetInfo((SIZE, SIZE, 3), 1000, 1281167, 50000)
    assert data.dataset_info("imagenet2012").input_shape == (224, 224, 3)  # the default
    gin.parse_config("tfgrow.data.ImageCrops.image_size = 72")
    assert data.dataset_info("imagenet2012").input_shape == (72, 72, 3)
    assert data.dataset_info("cifar10").input_shape == (32, 32, 3)  # fixed-size: unchanged


def test_train_batches_have_the_crop_shape_dtype_and_imagenet_normalisation(empty_dir):
    with tfds.testing.mock_data(num_examples=24):
        images, labels = collect(load("train", empty_dir, batch_size=8))
    assert images.shape == (24, SIZE, SIZE, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < 1000
    # Crops are in [0, 255] before normalisation.
    low, high = (0 - np.array(MEAN)) / STD, (1 - np.array(MEAN)) / STD
    assert np.all(images >= low - 1e-5) and np.all(images <= high + 1e-5)


def test_eval_batches_are_central_crops_normalised_in_file_order(empty_dir):
    with tfds.testing.mock_data(num_examples=10):
        raw = tfds.load(
            "imagenet2012",
            split="validation",
            data_dir=empty_dir,
            as_supervised=True,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        encoded, raw_labels = zip(*raw)
        images, labels = collect(load("validation", empty_dir, batch_size=4))
        again, _ = collect(load("validation", empty_dir, batch_size=4))
    assert images.shape == (10, SIZE, SIZE, 3)  # the last partial batch is kept
    np.testing.assert_array_equal(labels, raw_labels)
    expected = np.stack([crops_lib.eval_crop(e, CROPS) for e in encoded])
    np.testing.assert_allclose(images, (expected / 255.0 - MEAN) / STD, atol=1e-4)
    np.testing.assert_array_equal(images, again)


def test_train_order_and_crops_are_deterministic_per_seed_and_resume_at_any_epoch(empty_dir):
    with tfds.testing.mock_data(num_examples=32):

        def epochs(seed, count, skip=0):
            ds = load("train", empty_dir, batch_size=8, seed=seed)
            skip_epochs(ds, skip)
            return [collect(ds) for _ in range(count)]

        first, second = epochs(3, 2)
        (again,), (other,) = epochs(3, 1), epochs(4, 1)
        (resumed,) = epochs(3, 1, skip=1)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], second[1])  # reshuffled each epoch
    assert sorted(first[1]) == sorted(second[1])  # the same examples
    # A run resumed at epoch 1 sees the uninterrupted run's epoch 1 exactly.
    np.testing.assert_array_equal(resumed[0], second[0])
    np.testing.assert_array_equal(resumed[1], second[1])


def test_missing_imagenet_names_the_data_dir_the_build_command_and_the_manual_download(
    empty_dir,
):
    with pytest.raises(data.DatasetNotFoundError) as error:
        load("validation", empty_dir, batch_size=8)
    message = str(error.value)
    for expected in (
        "'imagenet2012' split 'validation'",
        f"data_dir={empty_dir!r}",
        f"`tfds build imagenet2012 --data_dir={empty_dir}`",
        "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar",
        f"{empty_dir}/downloads/manual",
        "tfgrow.train.data_dir",
    ):
        assert expected in message
    with pytest.raises(ValueError, match="stream it with load_dataset"):
        data.load_arrays("imagenet2012", "validation", data_dir=empty_dir)


def test_runs_fall_back_to_mock_data_of_the_configured_shape_only_when_asked(empty_dir, gin_config):
    arguments = ("imagenet2012", empty_dir, 8, 0, 16, 8)
    with pytest.raises(data.DatasetNotFoundError, match="tfds build imagenet2012"):
        load_run_data(*arguments, False)
    gin.parse_config("tfgrow.data.ImageCrops.image_size = 24")
    info, train, evaluation = load_run_data(*arguments, True)
    assert info.input_shape == (24, 24, 3) and info.num_classes == 1000
    (train_images, train_labels), (eval_images, _) = collect(train), collect(evaluation)
    assert train_images.shape == (16, 24, 24, 3) and train_labels.shape == (16,)
    assert eval_images.shape == (8, 24, 24, 3)


def test_other_variable_size_tfds_datasets_are_cropped_too(empty_dir):
    # oxford_flowers102: jpeg images of varying size, splits train/validation/test.
    spec = data.dataset_spec("oxford_flowers102", empty_dir)
    assert spec.variable_size and spec.image_shape[-1] == 3 and spec.num_classes == 102
    with tfds.testing.mock_data(num_examples=6):
        ds = data.load_dataset(
            "oxford_flowers102", "train", batch_size=3, data_dir=empty_dir, crops=CROPS
        )
        images, labels = collect(ds)
    assert images.shape == (6, SIZE, SIZE, 3) and labels.dtype == np.int32
    assert -1.0 <= images.min() and images.max() <= 1.0  # unknown statistics: mean/std 0.5


def test_the_pipeline_crops_in_parallel_and_prefetches(empty_dir):
    with tfds.testing.mock_data(num_examples=8):
        serialized = load("train", empty_dir, batch_size=4)._as_serialized_graph().numpy()
    graph = tf.compat.v1.GraphDef.FromString(serialized)
    parallel = {n.attr["f"].func.name: n for n in graph.node if n.op.startswith("ParallelMap")}
    ours = [n for name, n in parallel.items() if "random" in name or "transform" in name]
    assert len(ours) == 2  # crops per example (crops_lib.crop_examples), normalisation per batch
    assert all(n.attr["deterministic"].s in (b"default", b"true") for n in ours)  # order kept
    stages = [n.op for n in graph.node if n.op.endswith("Dataset") or "DatasetV" in n.op]
    assert stages[-1] == "PrefetchDataset"  # the pipeline's last stage


class VariableSizeShapes(tfds.core.GeneratorBasedBuilder):
    """A prepared tfds dataset of PNG images of 7 sizes: the real reader, not mock data."""

    # tfds looks for builder metadata beside the defining package; this file is not in one.
    __module__ = "tests.data.test_imagenet2012"
    url_infos = {}  # nothing to download (tfds would look for a checksums file beside the code)
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        features = {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=5),
        }
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features), supervised_keys=("image", "label")
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(40, 0), "test": self._generate_examples(12, 1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for index in range(count):
            height, width = 12 + 9 * (index % 7), 60 - 5 * (index % 7)
            image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
            yield index, {"image": image, "label": index % 5}


def test_a_prepared_variable_size_tfds_dataset_streams_deterministically(tmp_path):
    data_dir = str(tmp_path)
    VariableSizeShapes(data_dir=data_dir).download_and_prepare()
    name = "variable_size_shapes"
    info = data.dataset_info(name, data_dir, crops=CROPS)
    assert info == data.DatasetInfo((SIZE, SIZE, 3), 5, 40, 12)

    def epochs(seed, count, skip=0):
        ds = data.load_dataset(name, "train", batch_size=8, data_dir=data_dir, seed=seed)
        skip_epochs(ds, skip)
        return [collect(ds) for _ in range(count)]

    with gin.unlock_config():
        gin.bind_parameter("tfgrow.data.ImageCrops.image_size", SIZE)
    try:
        first, second = epochs(5, 2)
        (resumed,) = epochs(5, 1, skip=1)
        (other,) = epochs(6, 1)
        test = data.load_dataset(name, "test", batch_size=5, data_dir=data_dir)
        (test_images, test_labels), (test_again, _) = collect(test), collect(test)
    finally:
        gin.clear_config()
    assert first[0].shape == (40, SIZE, SIZE, 3) and sorted(first[1]) == sorted(second[1])
    assert not np.array_equal(first[1], second[1])
    np.testing.assert_array_equal(resumed[0], second[0])
    assert not np.array_equal(first[0], other[0])
    assert test_images.shape == (12, SIZE, SIZE, 3)
    assert sorted(test_labels) == sorted(np.arange(12) % 5)  # every example, the last batch kept
    np.testing.assert_array_equal(test_images, test_again)  # evaluation: same order and crops


def test_the_imagenet_experiment_crops_224_and_under_tiny_gin_64(gin_config):
    from tfgrow import config as config_lib

    experiment = "configs/experiments/imagenet_resnet50_width_multiplier.gin"
    config_lib.parse([experiment], [], search_path=REPO)
    assert gin.query_parameter("tfgrow.train.dataset") == "imagenet2012"
    assert gin.query_parameter("tfgrow.train.global_batch_size") == 256
    assert data.dataset_info("imagenet2012").input_shape == (224, 224, 3)
    gin.clear_config()
    config_lib.parse([experiment, "configs/tiny.gin"], [], search_path=REPO)
    assert data.dataset_info("imagenet2012").input_shape == (64, 64, 3)
    assert data.dataset_info("cifar10").input_shape == (32, 32, 3)
    assert gin.query_parameter("tfgrow.train.mock_data_if_missing") is True
