"""The models `benchmarks.step_time` times: growing models and stock Keras models of equal widths.

A benchmark model has a name (`INPUTS`: its input shape and classes). The names in
`GRAPH_BUILDERS` are plain Keras builders of `tfgrow.models` grown by `tfgrow.grow` (channels
only). The language models
(`LANGUAGE_MODELS`: `tfgrow.models.lstm_language_model`, stateful LSTMs) read windows of 35
token ids at their own batch size (Zaremba et al.'s 20, whatever --batch_size says).
`set_fraction` fixes the masks so that every step draws exactly a given fraction of every group;
`stock_model` builds a stock Keras model at exactly those widths.
"""

import numpy as np

INPUTS = {
    "resnet20": ((28, 28, 1), 10),
    "vgg16": ((32, 32, 3), 10),
    "mobilenet_v1": ((32, 32, 3), 10),
    "resnet50": ((32, 32, 3), 10),
    "lstm_small": ((35,), 10000),
    "lstm_medium": ((35,), 10000),
}
# Plain Keras builders (tfgrow.models) that tfgrow.grow grows.
GRAPH_BUILDERS = {
    "resnet20": "keras_resnet_cifar",
    "vgg16": "vgg16_bn",
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
    import tfgrow

    model = getattr(models, GRAPH_BUILDERS[name])(input_shape, classes)
    return tfgrow.grow(model, grow_layers=False, channel_multiple=multiple)


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
    """The grown model's source rebuilt at `widths` (group name -> width; fixed groups at full
    width), fresh weights: a stock Keras functional model of exactly those widths."""
    from tfgrow.latency import stock_model_at_widths

    return stock_model_at_widths(network, widths)


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
