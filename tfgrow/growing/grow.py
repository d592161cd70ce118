"""The entry point: `tfgrow.grow(model)`, and its gin-configurable launcher builder."""

import gin

from tfgrow.growing.model import GrowingModel


def grow(
    model,
    plain_blocks=(),
    grow_layers=True,
    growing=True,
    channel_multiple=1,
    logit_on=3.0,
    logit_off=-3.0,
    fixed_layers=(),
):
    """Makes a Keras functional model grow its channels (and blocks) during training.

    Like `tfmot.sparsity.keras.prune_low_magnitude(model)`: pass a built functional model of
    stock layers; the result keeps its layers and weights (the maximal network) and adds one mask
    group per prunable channel group and one gate per gated block (METHOD.md §1.1, §1.5).

    Args:
        model: a functional `keras.Model` (Conv2D, DepthwiseConv2D, SeparableConv2D, Dense,
            BatchNormalization, activations, pooling, padding, dropout, Add/Multiply and other
            merges, Concatenate, Flatten, Reshape keeping whole groups).
        plain_blocks: `(input_layer_name, output_layer_name)` pairs: plain blocks
            `m F(x) + (1 - m) x` to gate (same shape in and out).
        grow_layers: learn layer gates of identity residual blocks (all but the first of every
            stream) and of the declared plain blocks; False grows channels only.
        growing: False gives the full network (no sampling), the "full" baseline.
        channel_multiple: computed widths rounded up to this multiple (`masks.active_set`).
        logit_on, logit_off: initial logits of seed structures and of the others.
        fixed_layers: names of layers whose output channels keep their full width, with every
            channel tied to them (e.g. a language model's embedding, which the paper keeps).

    Returns:
        A `GrowingModel`.

    Raises:
        tfgrow.graph.UnsupportedLayerError: a layer the graph analysis cannot handle; the
            message names it and says what to do.

    Example:
    >>> import keras, tfgrow
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    >>> x = keras.layers.BatchNormalization()(x)
    >>> x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    >>> grown = tfgrow.grow(keras.Model(inputs, keras.layers.Dense(10)(x)))
    >>> grown.architecture()[0]
    {'conv': 1}
    """
    return GrowingModel(
        model,
        plain_blocks=plain_blocks,
        grow_layers=grow_layers,
        growing=growing,
        channel_multiple=channel_multiple,
        logit_on=logit_on,
        logit_off=logit_off,
        fixed_layers=fixed_layers,
    )


@gin.configurable(module="tfgrow", denylist=["batch_size"])
def grown_model(
    input_shape,
    num_classes,
    growing=True,
    builder=gin.REQUIRED,
    plain_blocks=(),
    grow_layers=False,
    fixed_layers=(),
    batch_size=None,
):
    """The launcher's `model_fn` for any plain Keras builder, grown by `grow`.

    `tfgrow.train.model_fn = @tfgrow.grown_model` with
    `tfgrow.grown_model.builder = @tfgrow.models.keras_resnet_cifar`.

    Args:
        input_shape, num_classes: passed to `builder(input_shape, num_classes)`.
        growing: False for the "full" method.
        builder: a plain Keras builder `(input_shape, num_classes) -> keras.Model`.
        plain_blocks: as `grow`; a callable `model -> pairs` is called on the built model.
        grow_layers: as `grow` (False: channels only, `configs/methods/grow_channels.gin`).
        fixed_layers: as `grow`.
        batch_size: passed on to `builder` when given: the fixed batch size of models with
            stateful layers (`tfgrow.models.lstm_language_model`), which the run passes.

    Returns:
        A `GrowingModel`.
    """
    batch = {} if batch_size is None else {"batch_size": batch_size}
    model = builder(input_shape, num_classes, **batch)
    if callable(plain_blocks):
        plain_blocks = plain_blocks(model)
    return grow(
        model,
        plain_blocks=plain_blocks,
        grow_layers=grow_layers,
        growing=growing,
        fixed_layers=fixed_layers,
    )
