"""Offline image-classification datasets as normalised, batched `tf.data` pipelines."""

import dataclasses
import gzip
import os
import re
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import tfgrow.data.crops as crops_lib
import tfgrow.data.text as text_lib
from tfgrow.data.info import DatasetInfo, DatasetNotFoundError
from tfgrow.errors import first_line

FASHION_MNIST_DIR_ENV = "TFGROW_FASHION_MNIST_DIR"
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SPLIT_RE = re.compile(r"^(train|test)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")
_STREAM_SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What tfgrow knows about one dataset (one row of `DATASETS`).

    Args:
        image_shape: `(height, width, channels)`; height and width are None when the images
            vary in size (they are cropped to `ImageCrops.image_size`).
        num_classes: Number of label classes.
        num_train, num_eval: Examples in the training and evaluation splits (None: unknown).
        mean, std: Per-channel statistics of the training images scaled to [0, 1].
        flip: Whether classes are invariant under horizontal mirroring (digits are not).
        train_split, eval_split: tfds split names.
        manual_download: Files tfds cannot download itself, to be placed in its manual dir.
    """

    image_shape: tuple
    num_classes: int
    num_train: int | None = None
    num_eval: int | None = None
    mean: tuple = (0.5,)
    std: tuple = (0.5,)
    flip: bool = False
    train_split: str = "train"
    eval_split: str = "test"
    manual_download: str = ""

    @property
    def variable_size(self):
        return None in self.image_shape[:2]


IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
# The one table of per-dataset facts; other tfds names are described from their tfds info.
DATASETS = {
    "fashion_mnist": DatasetSpec((28, 28, 1), 10, 60000, 10000, (0.2860,), (0.3530,), flip=True),
    "mnist": DatasetSpec((28, 28, 1), 10, 60000, 10000, (0.1307,), (0.3081,)),
    "cifar10": DatasetSpec(
        (32, 32, 3), 10, 50000, 10000, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), flip=True
    ),
    "cifar100": DatasetSpec((32, 32, 3), 100, 50000, 10000, *_CIFAR100_MEAN_STD, flip=True),
    "imagenet2012": DatasetSpec(
        (None, None, 3),
        1000,
        1281167,
        50000,
        *IMAGENET_MEAN_STD,
        flip=True,
        eval_split="validation",
        manual_download=(
            "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (register at "
            "https://image-net.org/download-images to get them)"
        ),
    ),
}
# Read without tfds metadata; the text corpora are tfgrow.data.text's.
KNOWN_DATASETS = tuple(DATASETS) + tuple(text_lib.TEXT_DATASETS)


def dataset_spec(name, data_dir=None):
    """Returns the `DatasetSpec` of a dataset: its row of `DATASETS`, else from its tfds info.

    Args:
        name: Dataset name, e.g. `"fashion_mnist"`, `"imagenet2012"` or any tfds name.
        data_dir: tfds data directory, only read for names not in `DATASETS`.
    """
    if name in DATASETS:
        return DATASETS[name]
    builder = _builder(name, data_dir)
    info = builder.info
    if not info.supervised_keys:
        raise ValueError(
            f"Expected a tfds dataset with (image, label) supervised keys. Received: {name!r} "
            "has none."
        )
    image, label = (info.features[key] for key in info.supervised_keys)
    if len(image.shape) != 3 or image.shape[-1] is None:
        raise ValueError(f"Expected images of shape (H, W, C). Received: {image.shape}")
    splits = info.splits
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    return DatasetSpec(
        tuple(image.shape),
        label.num_classes,
        splits["train"].num_examples if "train" in splits else None,
        splits["test"].num_examples if "test" in splits else None,
        manual_download="the files of its MANUAL_DOWNLOAD_INSTRUCTIONS" if manual else "",
    )


def eval_split(name):
    """The split a run evaluates on: `"test"`, `"validation"` for `imagenet2012`, `"valid"`
    for the text corpora."""
    if text_lib.is_text_dataset(name):
        return text_lib.EVAL_SPLIT
    return DATASETS[name].eval_split if name in DATASETS else DatasetSpec.eval_split


def dataset_info(name, data_dir=None, crops=None):
    """Returns the static `DatasetInfo` of a dataset.

    Args:
        name: Dataset name, e.g. `"fashion_mnist"`, `"imagenet2012"`, any tfds name, or a
            text corpus of `tfgrow.data.text` (`"ptb"`, `"wordnet_glosses"`).
        data_dir: tfds data directory, only used for names not known here (text: the corpus'
            directory).
        crops: `ImageCrops` of datasets whose images vary in size; None: the gin-configured
            `tfgrow.data.ImageCrops()`.

    Returns:
        A `DatasetInfo`.
    """
    if text_lib.is_text_dataset(name):
        return text_lib.text_info(name, data_dir)
    spec = dataset_spec(name, data_dir)
    if spec.num_train is None or spec.num_eval is None:
        splits = f"{spec.train_split}/{spec.eval_split}"
        raise DatasetNotFoundError(_not_found_message(name, splits, data_dir, (), spec=spec))
    shape = spec.image_shape
    if spec.variable_size:
        size = (crops or crops_lib.ImageCrops()).image_size
        shape = (size, size, shape[-1])
    return DatasetInfo(tuple(shape), spec.num_classes, spec.num_train, spec.num_eval)


def read_idx(path, expected_magic=None):
    """Reads an unsigned-byte IDX file (optionally gzip-compressed) into a numpy array.

    Args:
        path: Path of the `.idx` or `.idx.gz` file.
        expected_magic: If given, the required magic number (2051 images, 2049 labels).

    Returns:
        A read-only `uint8` numpy array with the dimensions stored in the header.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"Expected a readable IDX file. Received: {path!r} ({e})") from e
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    valid = magic is not None and data[:3] == b"\x00\x00\x08"  # 0x08: unsigned byte
    if not valid or (expected_magic is not None and magic != expected_magic):
        expected = expected_magic or "0x000008NN (unsigned byte, NN dims)"
        raise ValueError(
            f"Expected an IDX file with magic number {expected}. "
            f"Received: magic number {magic} in {path!r}"
        )
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise ValueError(f"Expected a {ndim}-d IDX header. Received: truncated file {path!r}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=ndim, offset=4))
    if len(data) - offset != int(np.prod(dims)):
        raise ValueError(
            f"Expected {int(np.prod(dims))} data bytes for dims {dims}. "
            f"Received: {len(data) - offset} bytes in {path!r} (truncated or corrupt)"
        )
    return np.frombuffer(data, np.uint8, offset=offset).reshape(dims)


def read_fashion_mnist(split, directory=None):
    """Reads a Fashion-MNIST split from the original IDX gzip files.

    The examples are in file order (tfds holds the same examples per split, in a shuffled order).

    Args:
        split: `"train"` (60000 examples) or `"test"` (the 10000 `t10k` examples).
        directory: Directory holding the IDX files. Defaults to `$TFGROW_FASHION_MNIST_DIR`,
            else `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`).

    Returns:
        Tuple `(images, labels)`: `uint8` array `(N, 28, 28, 1)` and `int64` array `(N,)`.
    """
    if split not in _IDX_FILES:
        raise ValueError(f"Expected split 'train' or 'test'. Received: split={split!r}")
    image_path, label_path = _idx_paths(split, directory)
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"Expected (N, H, W) images and N labels. Received: images {images.shape} in "
            f"{image_path!r}, labels {labels.shape} in {label_path!r}"
        )
    return images[..., None], labels.astype(np.int64)


def load_arrays(name, split, data_dir=None):
    """Loads a whole split into memory.

    Args:
        name: Dataset name. `"fashion_mnist"` is read from the local IDX files when present;
            any name is otherwise read from prepared tfds data (never downloaded).
        split: `"train"` or `"test"`, optionally sliced as in tfds, e.g. `"train[:10%]"`.
        data_dir: tfds data directory (default: tfds' own default).

    Returns:
        Tuple `(images, labels)`: `uint8` array `(N, H, W, C)` and `int64` array `(N,)`.
    """
    if name == "fashion_mnist" and all(map(os.path.exists, _idx_paths())):
        match = _SPLIT_RE.match(split.replace(" ", ""))
        if not match:
            raise ValueError(
                "Expected split 'train' or 'test', optionally sliced like 'train[:10%]'. "
                f"Received: split={split!r}"
            )
        images, labels = read_fashion_mnist(match.group(1))
        rows = slice(*(_slice_bound(b, len(labels)) for b in match.group(2, 3)))
        return images[rows], labels[rows]
    if dataset_spec(name, data_dir).variable_size:
        raise ValueError(
            f"Expected a dataset of fixed-size images. Received: {name!r}, whose images vary in "
            "size; stream it with load_dataset, which crops them to ImageCrops.image_size."
        )
    batches = list(tfds.as_numpy(_tfds_load(name, split, data_dir).batch(4096)))
    if not batches:
        raise ValueError(f"Expected a non-empty split. Received: {name!r} split={split!r}")
    return tuple(np.concatenate(parts) for parts in zip(*batches))


def load_dataset(
    name,
    split,
    *,
    batch_size,
    data_dir=None,
    augment=None,
    shuffle=None,
    seed=0,
    max_examples=None,
    drop_remainder=None,
    repeat=False,
    crops=None,
):
    """Builds a batched `tf.data` pipeline of normalised images and labels.

    Order: shuffle (seeded, reshuffled each epoch), augment, batch, normalise, prefetch; the maps
    run in parallel (AUTOTUNE) and keep the order, so equal seeds give equal pipelines.

    Args:
        name: Dataset name, e.g. `"fashion_mnist"`, `"cifar10"`, `"imagenet2012"` or any
            prepared tfds name.
        split: A tfds split, e.g. `"train"`, `eval_split(name)`, or sliced as `"train[:10%]"`.
        batch_size: Positive batch size.
        data_dir: tfds data directory, may be `gs://...` (default: tfds' own default).
        augment: Fixed-size images: random pad-4-and-crop. Images of varying size:
            random-resized crops (else central crops, `tfgrow.data.crops`). Both flip
            horizontally unless the classes are digits. Defaults to `True` for the train split.
        shuffle: Reshuffle the examples every epoch. Defaults to `True` for the train split.
        seed: Seed of the shuffle and the (stateless) augmentation; equal seeds give equal
            pipelines.
        max_examples: If set, keep only the first `max_examples` examples (before shuffling).
        drop_remainder: Drop the last partial batch. Defaults to `True` for the train split.
        repeat: Repeat indefinitely.
        crops: `ImageCrops` of datasets whose images vary in size; None: the gin-configured
            `tfgrow.data.ImageCrops()`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` with `float32` images `(B, H, W, C)`
        normalised per channel and `int32` labels `(B,)`.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Expected a positive integer batch_size. Received: {batch_size!r}")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"Expected max_examples None or >= 1. Received: {max_examples!r}")
    spec = dataset_spec(name, data_dir)
    is_train = split.split("[")[0].strip() == spec.train_split
    augment = is_train if augment is None else augment
    shuffle = is_train if shuffle is None else shuffle
    drop_remainder = is_train if drop_remainder is None else drop_remainder

    ds, buffer_size = _examples(name, split, spec, data_dir, max_examples, shuffle, seed)
    if shuffle:
        ds = ds.shuffle(max(buffer_size, 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if spec.variable_size:
        crops = crops or crops_lib.ImageCrops()
        channels = spec.image_shape[-1]
        ds = crops_lib.crop_examples(
            ds, crops, augment=augment, flip=spec.flip, seed=seed, channels=channels
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    shift_and_flip = augment and not spec.variable_size

    def transform(batch, batch_seed):
        images, labels = batch
        if shift_and_flip:
            images = augment_images(images, tf.stack([batch_seed, seed]), flip=spec.flip)
        images = (tf.cast(images, tf.float32) / 255.0 - spec.mean) / spec.std
        return images, tf.cast(labels, tf.int32)

    # One seed per batch; a fresh (but seed-determined) sequence every epoch.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, seeds)).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _examples(name, split, spec, data_dir, max_examples, shuffle, seed):
    """(unbatched examples of the split, their shuffle buffer size): arrays held in memory for
    the fixed-size datasets of `DATASETS`, streamed from tfds otherwise."""
    if name in DATASETS and not spec.variable_size:
        images, labels = load_arrays(name, split, data_dir)
        images, labels = images[:max_examples], labels[:max_examples]
        return tf.data.Dataset.from_tensor_slices((images, labels)), len(labels)
    ds = _tfds_load(
        name, split, data_dir, shuffle_files=shuffle, seed=seed, encoded=spec.variable_size
    )
    if max_examples:
        ds = ds.take(max_examples)
    return ds, _STREAM_SHUFFLE_BUFFER


def augment_images(images, seed, *, flip, pad=4):
    """Randomly zero-pads and crops back (and optionally flips) each image of a batch.

    Args:
        images: Batch `(B, H, W, C)` with static `H`, `W`.
        seed: Stateless seed, an integer tensor of shape `(2,)`.
        flip: Whether to also flip each image horizontally with probability 1/2.
        pad: Pixels of zero padding per side, i.e. the maximum shift.

    Returns:
        Batch of the same shape and dtype.
    """
    images = tf.convert_to_tensor(images)
    height, width = images.shape[1], images.shape[2]
    batch = tf.shape(images)[0]
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    if pad > 0:
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = tf.random.stateless_uniform(
            [2, batch], crop_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
        )
        rows = offsets[0][:, None] + tf.range(height)[None, :]
        cols = offsets[1][:, None] + tf.range(width)[None, :]
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
        images = tf.gather(images, cols, axis=2, batch_dims=1)
    if flip:
        flips = tf.random.stateless_uniform([batch], flip_seed) < 0.5
        images = tf.where(flips[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def _idx_paths(split=None, directory=None):
    directory = directory or os.environ.get(FASHION_MNIST_DIR_ENV) or DEFAULT_FASHION_MNIST_DIR
    names = _IDX_FILES[split] if split else _IDX_FILES["train"] + _IDX_FILES["test"]
    return tuple(os.path.join(directory, name) for name in names)


def _slice_bound(text, n):
    if not text:
        return None
    if text.endswith("%"):
        return round(n * int(text[:-1]) / 100)
    return int(text)


def _builder(name, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as e:  # Unknown name.
        raise DatasetNotFoundError(_not_found_message(name, "train", data_dir, (), e)) from e


def _tfds_load(name, split, data_dir, shuffle_files=False, seed=0, encoded=False):
    """Prepared tfds data as `(image, label)`; `encoded` keeps images as encoded strings."""
    looked_in = _idx_paths() if name == "fashion_mnist" else ()
    builder = _builder(name, data_dir)
    image_key = builder.info.supervised_keys[0]
    try:
        return builder.as_dataset(
            split=split,
            as_supervised=True,
            shuffle_files=shuffle_files,
            decoders={image_key: tfds.decode.SkipDecoding()} if encoded else None,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except AssertionError as e:  # What tfds raises for unprepared data.
        spec = dataset_spec(name, data_dir)
        message = _not_found_message(name, split, data_dir, looked_in, spec=spec)
        raise DatasetNotFoundError(message) from e


def _not_found_message(name, split, data_dir, looked_in, cause=None, spec=None):
    tfds_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    places = ", ".join([*looked_in, f"tfds data_dir={tfds_dir!r}"])
    build = f"`tfds build {name} --data_dir={tfds_dir}`"
    fix = (
        f"run {build} on a machine with network access and pass that directory as "
        "tfgrow.train.data_dir (or set TFDS_DATA_DIR)"
    )
    if spec is not None and spec.manual_download:
        manual_dir = os.path.join(tfds_dir, "downloads", "manual")
        fix = (
            f"{name} needs a manual download first: put {spec.manual_download} into "
            f"{manual_dir} (tfds' default manual_dir), then run {build} and pass "
            f"data_dir={tfds_dir!r} as tfgrow.train.data_dir"
        )
    if name == "fashion_mnist":
        fix = (
            f"`apt-get install dataset-fashion-mnist`, or set {FASHION_MNIST_DIR_ENV} to a "
            f"directory with the 4 IDX .gz files, or {fix}"
        )
    reason = f" ({first_line(cause)})" if cause else ""
    return (
        f"Expected dataset {name!r} split {split!r} to be available locally (nothing is "
        f"downloaded at run time). Received: no data in {places}{reason}. To fix: {fix}."
    )
