"""`keras.applications` models (`weights=None`) as plain builders for every method.

`keras_application(input_shape, num_classes, name="ResNet50")` returns the application as one
flat functional model with logits, so `tfgrow.grow`, MorphNet and the launcher take it like any
builder of the zoo. Inputs smaller than the application's minimum side (32 for ResNet50,
MobileNet, MobileNetV2 and EfficientNetB0) are zero-padded inside the model, centred:
Fashion-MNIST's 28x28x1 becomes 32x32x1 (a `ZeroPadding2D` layer, which the channel analysis
passes through). Any number of input channels works (`weights=None`).
"""

import gin
import keras

MIN_SIDE = 32  # keras.applications.imagenet_utils.obtain_input_shape's minimum for these models


@gin.configurable(module="tfgrow.models")
def keras_application(input_shape, num_classes, name="ResNet50", **kwargs):
    """A `keras.applications` model with random weights, returning logits.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_classes: number of classes of the classifier head.
        name: the application's name in `keras.applications` (e.g. "ResNet50", "MobileNetV2").
        **kwargs: passed to the application (e.g. `alpha=0.35` for MobileNetV2).

    Returns:
        A functional `keras.Model` whose input is `images` and whose output is the logits.

    Example:
    >>> model = keras_application((28, 28, 1), 10, name="ResNet50")
    >>> model.input_shape, model.output_shape
    ((None, 28, 28, 1), (None, 10))
    """
    application = getattr(keras.applications, name, None)
    if not callable(application):
        raise ValueError(
            f"Expected the name of a keras.applications model (e.g. 'ResNet50', 'MobileNetV2'). "
            f"Received: name={name!r}"
        )
    height, width = input_shape[:2]
    inputs = keras.Input(tuple(input_shape), name="images")
    x = inputs
    pad_height, pad_width = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
    if pad_height or pad_width:
        padding = (
            (pad_height // 2, pad_height - pad_height // 2),
            (pad_width // 2, pad_width - pad_width // 2),
        )
        x = keras.layers.ZeroPadding2D(padding, name="pad_to_min_side")(x)
    return application(
        weights=None,
        input_tensor=x,
        classes=num_classes,
        classifier_activation=None,
        **kwargs,
    )
