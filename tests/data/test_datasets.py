"""Tests for `tfgrow.data`: IDX parsing, splits, normalisation, augmentation, errors."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfgrow import data
from tfgrow.data import datasets

DEBIAN_DIR = datasets.DEFAULT_FASHION_MNIST_DIR
HAS_DEBIAN_FILES = all(
    os.path.exists(os.path.join(DEBIAN_DIR, f))
    for pair in datasets._IDX_FILES.values()
    for f in pair
)
needs_debian_files = pytest.mark.skipif(
    not HAS_DEBIAN_FILES, reason=f"needs `apt-get install dataset-fashion-mnist` ({DEBIAN_DIR})"
)


def write_idx(path, array, magic=None):
    """Writes a uint8 array as a gzip IDX file (magic defaults to 0x0800 + ndim)."""
    array = np.asarray(array, np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    header = b"".join(v.to_bytes(4, "big") for v in (magic, *array.shape))
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture
def fake_fashion_dir(tmp_path, monkeypatch):
    """A tiny Fashion-MNIST-shaped IDX directory, selected via the env var."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 12)):
        images_name, labels_name = datasets._IDX_FILES[split]
        write_idx(tmp_path / images_name, rng.integers(0, 256, (n, 28, 28)))
        write_idx(tmp_path / labels_name, np.arange(n) % 10)
    monkeypatch.setenv(datasets.FASHION_MNIST_DIR_ENV, str(tmp_path))
    return tmp_path


def shifts(image, pad=4):
    """All zero-filled translations of an (H, W, C) image by up to `pad` pixels."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    return [
        padded[dy : dy + height, dx : dx + width]
        for dy in range(2 * pad + 1)
        for dx in range(2 * pad + 1)
    ]


def is_shift(out, image):
    return any(np.array_equal(out, candidate) for candidate in shifts(image))


def collect(ds):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return np.concatenate(images), np.concatenate(labels)


def to_uint8(images, name):
    mean, std = datasets.DATASETS[name].mean, datasets.DATASETS[name].std
    return np.round((images * np.array(std) + np.array(mean)) * 255).astype(np.uint8)


def test_read_idx_round_trips_generated_file(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (5, 3, 4)).astype(np.uint8)
    write_idx(tmp_path / "x.gz", array)
    (tmp_path / "x.idx").write_bytes(gzip.decompress((tmp_path / "x.gz").read_bytes()))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "x.gz", 2051), array)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "x.idx"), array)
    write_idx(tmp_path / "labels.gz", np.arange(7))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "labels.gz", 2049), np.arange(7))


def test_read_idx_corrupt_file_error_names_file(tmp_path):
    write_idx(tmp_path / "good.gz", np.zeros((4, 2, 2)))
    truncated_gzip = tmp_path / "truncated-gzip.gz"
    truncated_gzip.write_bytes((tmp_path / "good.gz").read_bytes()[:-12])
    truncated_data = tmp_path / "truncated-data.gz"
    header = b"".join(v.to_bytes(4, "big") for v in (2051, 3, 2, 2))
    truncated_data.write_bytes(gzip.compress(header + bytes(5)))
    not_gzip = tmp_path / "not-gzip.gz"
    not_gzip.write_bytes(b"hello world")
    for path in (truncated_gzip, truncated_data, not_gzip):
        with pytest.raises(ValueError, match=path.name):
            datasets.read_idx(path)
    with pytest.raises(ValueError, match=r"magic number 2049.*good\.gz"):
        datasets.read_idx(tmp_path / "good.gz", expected_magic=2049)


def test_fashion_mnist_directory_is_overridable_by_env_var(fake_fashion_dir):
    images, labels = data.load_arrays("fashion_mnist", "train")
    assert images.shape == (40, 28, 28, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(40) % 10)
    assert data.load_arrays("fashion_mnist", "test")[0].shape == (12, 28, 28, 1)
    np.testing.assert_array_equal(data.load_arrays("fashion_mnist", "train[:25%]")[1], labels[:10])
    np.testing.assert_array_equal(data.load_arrays("fashion_mnist", "train[-4:]")[1], labels[-4:])
    with pytest.raises(ValueError, match="Received: split='validation'"):
        data.load_arrays("fashion_mnist", "validation")


@needs_debian_files
def test_debian_files_give_tfds_split_sizes_dtypes_and_shapes():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = data.load_arrays("fashion_mnist", split)
        assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(labels), [n // 10] * 10)
    info = data.dataset_info("fashion_mnist")
    assert info == data.DatasetInfo((28, 28, 1), 10, 60000, 10000)
    images, labels = next(iter(data.load_dataset("fashion_mnist", "train", batch_size=32)))
    assert images.shape == (32, 28, 28, 1) and images.dtype == tf.float32
    assert labels.shape == (32,) and labels.dtype == tf.int32


@needs_debian_files
def test_normalisation_gives_zero_mean_unit_std_on_test_split():
    images, labels = collect(data.load_dataset("fashion_mnist", "test", batch_size=1000))
    assert images.shape == (10000, 28, 28, 1) and len(labels) == 10000
    assert abs(images.mean()) < 0.02 and abs(images.std() - 1.0) < 0.02


def test_split_defaults_batching_and_max_examples(fake_fashion_dir):
    train = list(data.load_dataset("fashion_mnist", "train", batch_size=16))
    assert [len(labels) for _, labels in train] == [16, 16]  # remainder dropped
    test = data.load_dataset("fashion_mnist", "test", batch_size=5, max_examples=11)
    images, labels = collect(test)
    np.testing.assert_array_equal(labels, np.arange(11) % 10)  # kept, in order
    raw = data.load_arrays("fashion_mnist", "test")[0][:11]  # not augmented
    np.testing.assert_allclose(images, (raw / 255.0 - 0.2860) / 0.3530, atol=1e-5)
    repeated = data.load_dataset("fashion_mnist", "test", batch_size=5, repeat=True)
    assert len(list(repeated.take(7))) == 7
    with pytest.raises(ValueError, match="Received: 0"):
        data.load_dataset("fashion_mnist", "train", batch_size=0)


def test_augmentation_is_deterministic_for_a_fixed_seed(fake_fashion_dir):
    def epochs(seed, count=1):
        ds = data.load_dataset("fashion_mnist", "train", batch_size=8, seed=seed)
        return [collect(ds) for _ in range(count)]

    (first,), (again,), (other,) = epochs(3), epochs(3), epochs(4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])
    epoch1, epoch2 = epochs(3, count=2)
    np.testing.assert_array_equal(epoch1[0], first[0])
    assert not np.array_equal(epoch1[1], epoch2[1])  # reshuffled
    unshuffled = data.load_dataset("fashion_mnist", "train", batch_size=8, shuffle=False)
    (images1, labels1), (images2, labels2) = collect(unshuffled), collect(unshuffled)
    np.testing.assert_array_equal(labels1, labels2)
    assert not np.array_equal(images1, images2)  # re-augmented


def test_augment_images_only_shifts_unless_flip_is_set():
    images = np.random.default_rng(2).integers(1, 256, (64, 10, 12, 1)).astype(np.uint8)
    seed = tf.constant([5, 6], tf.int64)
    shifted = datasets.augment_images(images, seed, flip=False).numpy()
    flipped = datasets.augment_images(images, seed, flip=True).numpy()
    assert shifted.shape == flipped.shape == images.shape
    assert all(is_shift(out, image) for out, image in zip(shifted, images))
    mirrored = [is_shift(out, image[:, ::-1]) for out, image in zip(flipped, images)]
    assert all(m or is_shift(o, i) for m, o, i in zip(mirrored, flipped, images))
    assert 10 < sum(mirrored) < 54
    assert sum(np.array_equal(out, image) for out, image in zip(shifted, images)) < 8


def test_mnist_is_never_flipped_but_cifar10_is(tmp_path):
    def plain_and_augmented(name):
        kwargs = {"batch_size": 16, "data_dir": str(tmp_path), "shuffle": False, "seed": 7}
        plain = collect(data.load_dataset(name, "train", augment=False, **kwargs))[0]
        augmented = collect(data.load_dataset(name, "train", augment=True, **kwargs))[0]
        return list(zip(to_uint8(plain, name), to_uint8(augmented, name)))

    with tfds.testing.mock_data(num_examples=64):
        mnist = plain_and_augmented("mnist")
        cifar10 = plain_and_augmented("cifar10")
    assert len(mnist) == len(cifar10) == 64
    assert all(is_shift(out, image) for image, out in mnist)
    assert all(not is_shift(out, image[:, ::-1]) for image, out in mnist)
    assert any(is_shift(out, image[:, ::-1]) for image, out in cifar10)


def test_tfds_path_gives_cifar10_shape_and_normalisation(tmp_path):
    with tfds.testing.mock_data(num_examples=20):
        raw, raw_labels = data.load_arrays("cifar10", "test", data_dir=str(tmp_path))
        ds = data.load_dataset("cifar10", "test", batch_size=8, data_dir=str(tmp_path))
        images, labels = collect(ds)
    assert ds.element_spec[0].shape[1:] == (32, 32, 3)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, raw_labels)
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    np.testing.assert_allclose(images, (raw / 255.0 - mean) / std, atol=1e-4)


def test_other_tfds_names_stream_scaled_to_minus_one_one(tmp_path):
    with tfds.testing.mock_data(num_examples=10):
        ds = data.load_dataset("svhn_cropped", "train", batch_size=4, data_dir=str(tmp_path))
        images, labels = collect(ds)
    assert images.shape == (8, 32, 32, 3) and labels.dtype == np.int32
    assert -1.0 <= images.min() and images.max() <= 1.0 and images.min() < -0.9


def test_dataset_info_is_known_without_download():
    assert data.dataset_info("cifar10") == data.DatasetInfo((32, 32, 3), 10, 50000, 10000)
    assert data.dataset_info("cifar100").num_classes == 100
    assert data.dataset_info("mnist").input_shape == (28, 28, 1)
    with pytest.raises(data.DatasetNotFoundError, match="no_such_dataset"):
        data.dataset_info("no_such_dataset")


def test_missing_dataset_raises_helpful_error(tmp_path, monkeypatch):
    empty_idx_dir, empty_tfds_dir = tmp_path / "idx", tmp_path / "tfds"
    empty_idx_dir.mkdir()
    empty_tfds_dir.mkdir()
    monkeypatch.setenv(datasets.FASHION_MNIST_DIR_ENV, str(empty_idx_dir))
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_dataset("fashion_mnist", "train", batch_size=8, data_dir=str(empty_tfds_dir))
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    for expected in (
        "'fashion_mnist' split 'train'",
        str(empty_idx_dir / "train-images-idx3-ubyte.gz"),
        str(empty_tfds_dir),
        "apt-get install dataset-fashion-mnist",
        datasets.FASHION_MNIST_DIR_ENV,
        "tfds build fashion_mnist",
    ):
        assert expected in message
    with pytest.raises(data.DatasetNotFoundError, match="tfds build cifar10"):
        data.load_arrays("cifar10", "test", data_dir=str(empty_tfds_dir))
