"""VGG-16 with batch norm, CIFAR variant, as a plain Keras functional model.

The paper's VGG-16 on CIFAR-10 (Li et al. 2017; kuangliu/pytorch-cifar): 13 conv3x3-BN-ReLU layers
in 5 blocks, each block closed by 2x2 max pooling ("same" padding, so any input size works: 28x28
pools to 14, 7, 4, 2, 1), global average pooling, a 512-unit dense-BN-ReLU layer and the classifier.
15.0M parameters at 32x32x3 and 10 classes. Layer names follow `keras.applications.VGG16`:
`block{b}_conv{i}` (with `_bn`, `_relu`), `block{b}_pool`, then `pool`, `fc1` (`fc1_bn`, `fc1_relu`)
and `logits`.
"""

import gin
import keras

from tfgrow.models.keras_resnet import batch_norm_relu, check_width_multiplier, conv, scaled

L = keras.layers
# Conv widths, "M" for 2x2 max pooling.
VGG16_PLAN = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


@gin.configurable(module="tfgrow.models")
def vgg16_bn(input_shape, num_classes, width_multiplier=1.0, plan=VGG16_PLAN, hidden_units=512):
    """VGG-16-BN (CIFAR variant) as a stock Keras functional model.

    Args:
        input_shape: (H, W, C); any size.
        num_classes: number of logits.
        width_multiplier: scales every conv width and the hidden dense layer.
        plan: conv widths with "M" for 2x2 max pooling.
        hidden_units: width of the hidden dense layer (0 to omit it).

    Returns:
        A `keras.Model` named "vgg16_bn" that outputs logits.
    """
    check_width_multiplier(width_multiplier)
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    block, index = 1, 0
    for entry in plan:
        if entry == "M":
            x = L.MaxPooling2D(2, padding="same", name=f"block{block}_pool")(x)
            block, index = block + 1, 0
            continue
        index += 1
        name = f"block{block}_conv{index}"
        x = conv(scaled(entry, width_multiplier), 3, 1, name)(x)
        x = batch_norm_relu(x, name)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if hidden_units:
        units = scaled(hidden_units, width_multiplier)
        x = L.Dense(units, use_bias=False, kernel_initializer="he_normal", name="fc1")(x)
        x = batch_norm_relu(x, "fc1")
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="vgg16_bn")
