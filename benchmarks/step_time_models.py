"""The models `benchmarks.step_time` times: growing models and stock Keras models of equal widths.

A benchmark model has a name (`INPUTS`: its input shape and classes). ResNet-20 and VGG-16 are
tfgrow's growable layers (`GrowingNetwork`); the names in `GRAPH_BUILDERS` are plain Keras
builders grown by the graph engine (`tfgrow.grow`, channels only). The language models
(`LANGUAGE_MODELS`: `tfgrow.models.lstm_language_model`, stateful LSTMs) read windows of 35
token ids at their own batch size (Zaremba et al.'s 20, whatever --batch_size says).
`set_fraction` fixes the masks so that every step draws exactly a given fraction of every group;
`stock_model` builds a stock Keras model at exactly those widths.
"""

import numpy as np

INPUTS = {
    "resnet20": ((28, 28, 1), 10),
    "resnet20_graph": ((28, 28, 1), 10),
    "vgg16": ((32, 32, 3), 10),
    "mobilenet_v1": ((32, 32, 3), 10),
    "resnet50": ((32, 32, 3), 10),
    "lstm_small": ((35,), 10000),
    "lstm_medium": ((35,), 10000),
}
# Plain Keras builders (tfgrow.models) that the graph engine grows.
GRAPH_BUILDERS = {
    "resnet20_graph": "keras_resnet_cifar",
    "mobilenet_v1": "mobilenet_v1",
    "resnet50": "resnet50",
}
# Language models: the LSTM units of Zaremba et al.'s small and medium sizes, batch 20.
LANGUAGE_MODELS = {"lstm_small": 200, "lstm_medium": 650}
LANGUAGE_MODEL_BATCH = 20


# ---------------------------------------------------------------------------- models
def growing_model(name, multiple):
    """The growing model `name`, its computed widths rounded up to `multiple`."""
    from tfgrow import models

    input_shape, classes = INPUTS[name]
    if name in LANGUAGE_MODELS:
        import tfgrow

        model = models.lstm_language_model(
            input_shape, classes, batch_size=LANGUAGE_MODEL_BATCH, units=LANGUAGE_MODELS[name]
        )
        return tfgrow.grow(model, grow_layers=False, channel_multiple=multiple)
    if name in GRAPH_BUILDERS:
        import tfgrow

        model = getattr(models, GRAPH_BUILDERS[name])(input_shape, classes)
        return tfgrow.grow(model, grow_layers=False, channel_multiple=multiple)
    network = (models.resnet_cifar if name == "resnet20" else models.vgg16)(input_shape, classes)
    network.channel_multiple = multiple
    return network


def optimizer_settings(name):
    """The optimiser both steps of `name` use: plain SGD for a language model (Zaremba's recipe,
    configs/language_model.gin: its embedding updates the looked-up rows only), else momentum 0.9
    with weight decay 5e-4 (the conv configs')."""
    if name in LANGUAGE_MODELS:
        return {"momentum": 0.0, "weight_decay": 0.0}
    return {"momentum": 0.9, "weight_decay": 5e-4}


def batch_size(name, default):
    """The batch size model `name` runs at: its own for a language model, else `default`."""
    return LANGUAGE_MODEL_BATCH if name in LANGUAGE_MODELS else default


def batch(name, batch_size):
    """A fixed batch of random inputs and labels for model `name` (token ids and next tokens
    for a language model)."""
    import tensorflow as tf

    input_shape, classes = INPUTS[name]
    rng = np.random.default_rng(0)
    if name in LANGUAGE_MODELS:
        (steps,) = input_shape
        tokens = rng.integers(0, classes, (LANGUAGE_MODEL_BATCH, steps + 1)).astype(np.int32)
        return tf.constant(tokens[:, :-1]), tf.constant(tokens[:, 1:])
    images = rng.normal(size=(batch_size, *input_shape)).astype(np.float32)
    labels = rng.integers(0, classes, batch_size).astype(np.int32)
    return tf.constant(images), tf.constant(labels)


def stock_model(network, widths):
    """A stock Keras functional model of `network` at `widths` (group name -> width)."""
    from tfgrow.growing import GrowingModel

    if isinstance(network, GrowingModel):
        return graph_stock_model(network, widths)
    return sequence_stock_model(network, widths)


def graph_stock_model(network, widths):
    """The grown model's source rebuilt at `widths` (fixed groups at full width), fresh weights."""
    from tfgrow.latency import stock_model_at_widths

    return stock_model_at_widths(network, widths)


def sequence_stock_model(network, widths):
    """A stock Keras functional model of a GrowingNetwork's layer sequence at `widths`."""
    import keras

    from tfgrow.layers.blocks import GrowableBlock
    from tfgrow.layers.conv import GrowableConv2D, GrowableDense
    from tfgrow.layers.pooling import Pool2D

    def width(group, full):
        return full if group is None else int(widths[group])

    def conv(x, layer):
        filters = width(layer.output_group, layer.filters)
        x = keras.layers.Conv2D(
            filters, layer.kernel_size, layer.strides, padding="same", use_bias=layer.use_bias
        )(x)
        if layer.use_batch_norm:
            x = keras.layers.BatchNormalization(epsilon=layer.batch_norm_epsilon)(x)
        return keras.layers.Activation(layer.activation)(x)

    def dense(x, layer):
        x = keras.layers.Dense(width(layer.output_group, layer.units), use_bias=layer.use_bias)(x)
        if layer.use_batch_norm:
            x = keras.layers.BatchNormalization(epsilon=layer.batch_norm_epsilon)(x)
        return keras.layers.Activation(layer.activation)(x)

    inputs = keras.Input(network.input_spec_shape)
    x = inputs
    for layer in network.layer_sequence:
        if isinstance(layer, GrowableBlock):
            body = conv(conv(x, layer.conv1), layer.conv2)
            shortcut = conv(x, layer.shortcut) if layer.shortcut is not None else x
            x = keras.layers.ReLU()(keras.layers.Add()([shortcut, body]))
        elif isinstance(layer, GrowableConv2D):
            x = conv(x, layer)
        elif isinstance(layer, GrowableDense):
            x = dense(x, layer)
        elif isinstance(layer, Pool2D) and layer.kind == "max":
            x = keras.layers.MaxPooling2D(2, padding="same")(x)
        elif isinstance(layer, Pool2D):
            x = keras.layers.GlobalAveragePooling2D()(x)
        else:
            raise TypeError(f"No stock equivalent for {type(layer).__name__} {layer.name!r}")
    return keras.Model(inputs, x, name=f"stock_{network.name}")


def set_fraction(network, fraction):
    """Logits +-30: exactly round(fraction * size) structures per group are drawn every step."""
    widths = {}
    for name, group in network.channel_groups.items():
        count = max(1, int(round(fraction * group.size)))
        logits = np.full(group.size, -30.0, np.float32)
        logits[:count] = 30.0
        group.logits.assign(logits)
        widths[name] = count
    return widths
