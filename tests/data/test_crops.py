"""Tests for `tfgrow.data.crops`: random-resized and central crops of variable-size images."""

import numpy as np
import pytest
import tensorflow as tf

from tfgrow.data import crops as crops_lib

SIZE = 32
CROPS = crops_lib.ImageCrops(image_size=SIZE)


def coordinate_image(height, width):
    """uint8 (H, W, 3): channel 0 is the row index, channel 1 the column index (H, W <= 256)."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def png(image):
    return tf.io.encode_png(image)


def jpeg(image):
    return tf.io.encode_jpeg(image, quality=95)


def window_of(crop):
    """(top, left, height, width) of the window a coordinate-image crop came from.

    Bilinear resizing with half-pixel centres maps the window's first and last pixel centres to
    half an output pixel inside the output's edges: the coordinate range seen in the crop is
    the window's extent times (SIZE - 1) / SIZE, starting half an output pixel in.
    """
    rows, cols = crop[..., 0], crop[..., 1]
    height = (rows.max() - rows.min()) * SIZE / (SIZE - 1)
    width = (cols.max() - cols.min()) * SIZE / (SIZE - 1)
    top = rows.min() - height / (2 * SIZE) + 0.5
    left = cols.min() - width / (2 * SIZE) + 0.5
    return top, left, height, width


@pytest.mark.parametrize("shape", [(17, 240), (240, 17), (50, 50), (120, 160), (5, 7), (1, 1)])
@pytest.mark.parametrize("encode", [png, jpeg], ids=["png", "jpeg"])
def test_crops_have_the_configured_size_for_any_image_shape_and_encoding(shape, encode):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3)).astype(np.uint8)
    for seed in range(4):
        crop = crops_lib.train_crop(encode(image), tf.constant([seed, 1]), CROPS, flip=True)
        assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(crop)) and float(tf.reduce_max(crop)) <= 255.0
    crop = crops_lib.eval_crop(encode(image), CROPS)
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == tf.float32


def test_random_crops_span_the_area_and_aspect_ratio_ranges():
    height, width = 200, 250
    encoded = png(coordinate_image(height, width))
    areas, aspects, flips = [], [], 0
    for seed in range(60):
        crop = crops_lib.train_crop(encoded, tf.constant([seed, 7]), CROPS, flip=True).numpy()
        top, left, crop_height, crop_width = window_of(crop)
        assert top >= -0.01 and left >= -0.01
        assert top + crop_height <= height + 0.01 and left + crop_width <= width + 0.01
        areas.append(crop_height * crop_width / (height * width))
        aspects.append(crop_width / crop_height)
        flips += crop[0, 0, 1] > crop[0, -1, 1]  # columns decrease: mirrored
    # Windows are whole pixels: allow one pixel of rounding per side.
    assert min(areas) >= 0.08 - 0.02 and max(areas) <= 1.0
    assert min(aspects) >= 0.75 * 0.95 and max(aspects) <= 4 / 3 * 1.05
    assert min(areas) < 0.3 and max(areas) > 0.7  # the range is used, not one size
    assert 15 <= flips <= 45


def test_crops_are_deterministic_per_seed():
    encoded = jpeg(coordinate_image(90, 120))
    first = crops_lib.train_crop(encoded, tf.constant([3, 4]), CROPS, flip=True)
    again = crops_lib.train_crop(encoded, tf.constant([3, 4]), CROPS, flip=True)
    other = crops_lib.train_crop(encoded, tf.constant([5, 4]), CROPS, flip=True)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_eval_crop_is_the_shorter_side_resized_to_size_over_0875_then_centre_cropped():
    height, width = 100, 200
    crop = crops_lib.eval_crop(png(coordinate_image(height, width)), CROPS).numpy()
    # The definition, in original pixel coordinates: resizing the shorter side to 32 / 0.875
    # and keeping the central 32x32 shows the central 87.5 x 87.5 square, so output pixel j
    # samples (side - 87.5) / 2 + (j + 0.5) * 87.5 / 32 - 0.5 along each axis.
    side = 0.875 * height
    centres = (np.arange(SIZE) + 0.5) * side / SIZE - 0.5
    rows = (height - side) / 2 + centres
    cols = (width - side) / 2 + centres
    # Windows are whole pixels (88 wide here, from row 6 and column 56): a quarter pixel off.
    np.testing.assert_allclose(crop[..., 0], np.broadcast_to(rows[:, None], (SIZE, SIZE)), atol=0.3)
    np.testing.assert_allclose(crop[..., 1], np.broadcast_to(cols[None, :], (SIZE, SIZE)), atol=0.3)


def test_jpeg_window_decoding_equals_decoding_the_whole_image_and_slicing():
    image = np.random.default_rng(1).integers(0, 256, (64, 80, 3)).astype(np.uint8)
    encoded = jpeg(image)
    shapes = []

    def window(shape):
        shapes.append(shape)
        return tf.constant([5, 9, 40, 33])

    whole = tf.io.decode_jpeg(encoded, channels=3).numpy()
    decoded = crops_lib.decode_crop(encoded, window, 3).numpy().astype(int)
    expected = whole[5:45, 9:42].astype(int)
    np.testing.assert_array_equal(decoded[:, :-1], expected[:, :-1])
    # libjpeg's chroma upsampling sees no pixel right of the window: its last column differs.
    assert np.abs(decoded[:, -1] - expected[:, -1]).max() < 32
    np.testing.assert_array_equal(crops_lib.decode_crop(png(image), window, 3), image[5:45, 9:42])
    # Eager tf.cond runs one branch: the JPEG header's shape, then the decoded PNG's.
    np.testing.assert_array_equal(shapes, [[64, 80], [64, 80]])


def test_a_window_the_sampler_cannot_fit_falls_back_to_the_central_crop():
    # A 4x250 strip cannot hold a 3/4..4/3 window of >= 8% of its area: every attempt fails.
    encoded = png(coordinate_image(4, 250))
    crop = crops_lib.train_crop(encoded, tf.constant([0, 0]), CROPS, flip=False)
    np.testing.assert_allclose(crop, crops_lib.eval_crop(encoded, CROPS))


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"image_size": 0}, "image_size=0"),
        ({"eval_crop_fraction": 1.5}, "eval_crop_fraction=1.5"),
        ({"min_area": 0.0}, "min_area=0.0"),
        ({"aspect_ratios": (2.0, 1.0)}, "aspect_ratios=(2.0, 1.0)"),
    ],
)
def test_bad_crop_settings_say_what_was_received(kwargs, received):
    with pytest.raises(
        ValueError, match=f"Received: {received}".replace("(", r"\(").replace(")", r"\)")
    ):
        crops_lib.ImageCrops(**kwargs)
