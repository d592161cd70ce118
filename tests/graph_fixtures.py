"""Small functional models with hand-computed MorphNet values, shared by the MorphNet tests.

Every model takes 4x4x2 inputs, so a 3x3 'same' conv has C = 2 * 16 * 9 = 288 (FLOPs) and a 1x1
conv C = 32; the dense head has C = 2. The docstrings of the tests give the hand computations.
"""

import keras
import numpy as np

L = keras.layers
INPUT_SHAPE = (4, 4, 2)


def conv_bn(x, filters, kernel_size, name, relu=True):
    x = L.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization(name=name + "_bn")(x)
    return L.ReLU(name=name + "_relu")(x) if relu else x


def head(x, num_classes):
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return L.Dense(num_classes, name="logits")(x)


def plain_chain():
    """input(2) -> c1 (3x3, 3) -> c2 (1x1, 4) -> pool -> dense(5)."""
    inputs = keras.Input(INPUT_SHAPE, name="images")
    x = conv_bn(inputs, 3, 3, "c1")
    x = conv_bn(x, 4, 1, "c2", relu=False)
    return keras.Model(inputs, head(x, 5), name="plain_chain")


def residual_add():
    """input(2) -> a (3x3, 4) -> b (3x3, 4); add(a, b) -> pool -> dense(3)."""
    inputs = keras.Input(INPUT_SHAPE, name="images")
    a = conv_bn(inputs, 4, 3, "a")
    b = conv_bn(a, 4, 3, "b", relu=False)
    x = L.Add(name="add")([a, b])
    return keras.Model(inputs, head(x, 3), name="residual_add")


def concat():
    """input(2) -> p (1x1, 3), q (1x1, 2); concat -> r (3x3, 4) -> pool -> dense(2)."""
    inputs = keras.Input(INPUT_SHAPE, name="images")
    p = conv_bn(inputs, 3, 1, "p")
    q = conv_bn(inputs, 2, 1, "q")
    x = L.Concatenate(name="concat")([p, q])
    x = conv_bn(x, 4, 3, "r")
    return keras.Model(inputs, head(x, 2), name="concat")


def depthwise():
    """input(2) -> e (1x1, 3) -> depthwise 3x3 -> f (1x1, 2) -> pool -> dense(2)."""
    inputs = keras.Input(INPUT_SHAPE, name="images")
    x = conv_bn(inputs, 3, 1, "e")
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="d")(x)
    x = L.BatchNormalization(name="d_bn")(x)
    x = L.ReLU(name="d_relu")(x)
    x = conv_bn(x, 2, 1, "f")
    return keras.Model(inputs, head(x, 2), name="depthwise")


def set_gammas(model, gammas):
    """Assigns BN gammas: {bn_layer_name: values}."""
    for name, values in gammas.items():
        model.get_layer(name).gamma.assign(np.asarray(values, np.float32))


def randomize_batch_norms(model, seed=0):
    """Random gamma, beta and moving statistics in every BN (so slicing errors show)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            shape = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.5, shape).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.5, shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))


def se_concat_flatten(input_shape=(6, 6, 3), num_classes=3):
    """Squeeze-and-excitation Multiply, a Concatenate and Flatten -> Dense, with a residual add.

    input -> a (3x3, 8) -> SE(a): pool -> reshape (1, 1, 8) -> s (1x1, 2, relu) -> e (1x1, 8,
    sigmoid) -> multiply; b (1x1, 4) on input; concat(se, b) -> c (3x3, 12) -> d (3x3, 12);
    add(c, d) -> max pool -> flatten -> dense(6) + BN -> dense(num_classes).
    """
    inputs = keras.Input(input_shape, name="images")
    a = conv_bn(inputs, 8, 3, "a")
    squeeze = L.GlobalAveragePooling2D(name="se_pool")(a)
    squeeze = L.Reshape((1, 1, 8), name="se_reshape")(squeeze)
    squeeze = L.Conv2D(2, 1, activation="relu", name="se_reduce")(squeeze)
    excite = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(squeeze)
    a = L.Multiply(name="se_multiply")([a, excite])
    b = conv_bn(inputs, 4, 1, "b")
    x = L.Concatenate(name="concat")([a, b])
    c = conv_bn(x, 12, 3, "c")
    d = conv_bn(c, 12, 3, "d", relu=False)
    x = L.Add(name="add")([c, d])
    x = L.MaxPooling2D(2, name="max_pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(6, use_bias=False, name="hidden")(x)
    x = L.BatchNormalization(name="hidden_bn")(x)
    x = L.ReLU(name="hidden_relu")(x)
    return keras.Model(inputs, L.Dense(num_classes, name="logits")(x), name="se_concat_flatten")
