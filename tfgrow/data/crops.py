"""Fixed-size crops of datasets whose images vary in size (ImageNet-style preprocessing).

Training: a random-resized crop (Inception; the fb.resnet.torch scheme the growing paper follows,
Gross & Wilber 2016): a window of 8% to 100% of the image area with aspect ratio 3/4 to 4/3,
resized to `image_size` x `image_size`, flipped horizontally with probability 1/2. Evaluation:
the central square of `eval_crop_fraction` of the shorter side, resized to `image_size`, i.e. the
shorter side resized to `image_size / 0.875` (256 for 224) and the central `image_size` square
kept. JPEG images (all of tfds' imagenet2012) decode only the window
(`tf.io.decode_and_crop_jpeg`, as TF's reference ImageNet pipelines do); other formats are
decoded whole and sliced.

The crops are float32 in [0, 255]; `tfgrow.data.datasets` normalises and batches them like every
other dataset.
"""

import dataclasses

import gin
import tensorflow as tf

# Attempts at a window inside the area and aspect-ratio ranges before falling back to the
# central crop (10 in fb.resnet.torch and TF's reference ResNet pipeline).
_MAX_ATTEMPTS = 10


@gin.configurable(module="tfgrow.data")
@dataclasses.dataclass(frozen=True)
class ImageCrops:
    """How images of varying size (e.g. tfds `imagenet2012`) become the model's square inputs.

    Datasets of fixed-size images (Fashion-MNIST, CIFAR) keep their own size: these settings
    apply only to datasets whose images vary in size.

    Args:
        image_size: side of the square crops, the model's input size (224 for ImageNet models;
            `configs/tiny.gin` sets 64 so that smoke runs are cheap).
        eval_crop_fraction: evaluation keeps the central square of this fraction of the
            shorter side (0.875: shorter side resized to 256, central 224 kept).
        min_area: smallest fraction of the image area a training crop covers.
        aspect_ratios: `(low, high)` range of the training crops' width / height.
    """

    image_size: int = 224
    eval_crop_fraction: float = 0.875
    min_area: float = 0.08
    aspect_ratios: tuple = (3 / 4, 4 / 3)

    def __post_init__(self):
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise ValueError(f"Expected image_size >= 1. Received: image_size={self.image_size!r}")
        if not 0 < self.eval_crop_fraction <= 1:
            raise ValueError(
                "Expected eval_crop_fraction in (0, 1]. "
                f"Received: eval_crop_fraction={self.eval_crop_fraction!r}"
            )
        if not 0 < self.min_area <= 1:
            raise ValueError(f"Expected min_area in (0, 1]. Received: min_area={self.min_area!r}")
        low, high = self.aspect_ratios
        if not 0 < low <= high:
            raise ValueError(
                "Expected aspect_ratios (low, high) with 0 < low <= high. "
                f"Received: aspect_ratios={self.aspect_ratios!r}"
            )


def crop_examples(dataset, crops, *, augment, flip, seed, channels):
    """Maps a dataset of `(encoded image, label)` to `(crop, label)` with parallel calls.

    Args:
        dataset: `tf.data.Dataset` of `(encoded image string, label)` pairs (tfds with
            `tfds.decode.SkipDecoding()`).
        crops: an `ImageCrops`.
        augment: random-resized crops (and flips); otherwise central evaluation crops.
        flip: whether augmented crops are also flipped horizontally with probability 1/2.
        seed: integer seed. Each example gets its own stateless seed from a seeded random
            stream that is redrawn each time an iterator is created, so every epoch crops
            differently and a resumed run's k-th epoch crops as the uninterrupted run's did.
        channels: number of image channels to decode to.

    Returns:
        A `tf.data.Dataset` of `(float32 image (S, S, channels) in [0, 255], label)`.
    """
    if not augment:

        def central(encoded, label):
            return eval_crop(encoded, crops, channels=channels), label

        return dataset.map(central, num_parallel_calls=tf.data.AUTOTUNE)

    def random(example, example_seed):
        encoded, label = example
        stateless_seed = tf.stack([example_seed, tf.constant(seed, tf.int64)])
        return train_crop(encoded, stateless_seed, crops, flip=flip, channels=channels), label

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, seeds)).map(random, num_parallel_calls=tf.data.AUTOTUNE)


def train_crop(encoded, seed, crops, *, flip, channels=3):
    """A random-resized crop of one encoded image.

    Args:
        encoded: scalar string tensor, a JPEG, PNG, GIF or BMP image.
        seed: stateless seed, an integer tensor of shape `(2,)`.
        crops: an `ImageCrops`.
        flip: also flip horizontally with probability 1/2.
        channels: number of channels to decode to.

    Returns:
        float32 tensor `(image_size, image_size, channels)` in [0, 255].
    """
    window_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))

    def random_window(shape):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.concat([shape, [channels]], axis=0),
            bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
            seed=window_seed,
            min_object_covered=0.0,
            aspect_ratio_range=crops.aspect_ratios,
            area_range=(crops.min_area, 1.0),
            max_attempts=_MAX_ATTEMPTS,
            use_image_if_no_bounding_boxes=True,
        )
        # The sampler returns the whole image when every attempt failed (e.g. a 10x300
        # strip): fall back to the evaluation crop then, as fb.resnet.torch does.
        failed = tf.reduce_all(tf.equal(size[:2], shape))
        sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
        return tf.where(failed, central_window(shape, crops.eval_crop_fraction), sampled)

    image = _resize(decode_crop(encoded, random_window, channels), crops.image_size)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return image


def eval_crop(encoded, crops, *, channels=3):
    """The central evaluation crop of one encoded image.

    Args:
        encoded: scalar string tensor, a JPEG, PNG, GIF or BMP image.
        crops: an `ImageCrops`.
        channels: number of channels to decode to.

    Returns:
        float32 tensor `(image_size, image_size, channels)` in [0, 255].
    """

    def window(shape):
        return central_window(shape, crops.eval_crop_fraction)

    return _resize(decode_crop(encoded, window, channels), crops.image_size)


def central_window(shape, fraction):
    """`(top, left, height, width)` int32 of the central square of `fraction` of the shorter
    side of an image of `shape` `(height, width)`."""
    shape = tf.cast(shape, tf.int32)
    side = tf.cast(tf.round(fraction * tf.cast(tf.reduce_min(shape), tf.float32)), tf.int32)
    side = tf.maximum(side, 1)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    return tf.stack([top, left, side, side])


def decode_crop(encoded, window_fn, channels):
    """Decodes one window of an encoded image as uint8.

    Args:
        encoded: scalar string tensor, a JPEG, PNG, GIF or BMP image.
        window_fn: `(height, width)` int32 tensor -> `(top, left, height, width)` int32 tensor.
        channels: number of channels to decode to.

    Returns:
        uint8 tensor `(window height, window width, channels)`. A JPEG's header gives its
        shape and only the window is decoded; other formats are decoded once and sliced.
    """

    def jpeg():
        window = window_fn(tf.io.extract_jpeg_shape(encoded)[:2])
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=channels)

    def other():
        image = _decode(encoded, channels)
        window = window_fn(tf.shape(image)[:2])
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], channels])

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def _decode(encoded, channels):
    image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
    return tf.ensure_shape(image, [None, None, channels])


def _resize(image, size):
    # Bilinear interpolation is a convex combination: values stay in [0, 255].
    resized = tf.image.resize(image, [size, size], method="bilinear")
    return tf.ensure_shape(resized, [size, size, image.shape[-1]])
