"""The graph engine computes what it should (DESIGN.md, "Compact execution").

(a) For the same sampled masks, compact execution (only active channels and blocks) gives the
outputs and gradients of dense execution (full width, unsampled structures multiplied by 0).
(b) With every structure on and mask values 1 (`full_context`), the grown model computes exactly
the original Keras model's function with the same weights: inference, and training mode with
batch statistics and the same moving-statistic updates.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures import graphs
from tfgrow.masks import Temperature, active_set, capacity_ladder
from tfgrow.models import keras_resnet_cifar, mobilenet_v1

FAST = {
    "resnet20": lambda: keras_resnet_cifar((12, 12, 3), 5, width_multiplier=0.5),
    "mobilenet_v1": lambda: mobilenet_v1((16, 16, 3), 5, width_multiplier=0.125, dropout_rate=0.0),
    "se_concat_flatten": graphs.se_concat_flatten,
    "no_batch_norm": graphs.no_batch_norm,
}
APPLICATIONS = {
    "keras_resnet50": lambda: keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=5
    ),
    "keras_mobilenet_v2": lambda: keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), classes=5, alpha=0.35
    ),
    # Squeeze-and-excitation convs without batch norm (swish and sigmoid), Rescaling,
    # Normalization and drop-connect Dropout.
    "keras_efficientnet_b0": lambda: keras.applications.EfficientNetB0(
        weights=None, input_shape=(32, 32, 3), classes=5
    ),
}


def _grown(builder, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = builder()
    graphs.randomize_batch_norms(model, seed)
    return model, tfgrow.grow(model, **kwargs)


def _randomise_logits(grown, seed):
    rng = np.random.default_rng(seed)
    for group in grown.group_variables().values():
        group.logits.assign(rng.normal(0.0, 1.5, group.logits.shape).astype(np.float32))
        group.counters.assign(rng.uniform(0.0, 2.0, group.counters.shape).astype(np.float32))


def _outputs_and_gradients(grown, context, images, numpy=True):
    variables = grown.trainable_variables
    with tf.GradientTape() as tape:
        outputs = grown.forward(images, context)
        loss = tf.reduce_sum(tf.sin(3.0 * outputs))
    gradients = [
        None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)
    ]
    if numpy:
        gradients = [None if g is None else g.numpy() for g in gradients]
    return outputs, gradients


def _check_compact_matches_dense(builder, training, channel_multiple=1, seed=0, **kwargs):
    model, grown = _grown(builder, seed, channel_multiple=channel_multiple, **kwargs)
    _randomise_logits(grown, seed)
    images = tf.random.normal([3, *model.input_shape[1:]], seed=seed)
    context = grown.sample_context(tf.constant([seed, 7], tf.int64), Temperature(), 0.5)
    context.training = training
    dense = grown.dense_equivalent(context)
    compact_out, compact_grads = _outputs_and_gradients(grown, context, images)
    dense_out, dense_grads = _outputs_and_gradients(grown, dense, images)
    widths, _ = grown.widths_and_blocks(context)
    sizes = {name: group.size for name, group in grown.channel_groups.items()}
    assert any(float(widths[name]) < sizes[name] for name in sizes), "nothing was pruned"
    np.testing.assert_allclose(compact_out, dense_out, rtol=1e-3, atol=1e-4)
    # float32 through 15-28 batch norms over 3 examples: gradients agree to ~0.3% of their scale
    # (a wrong gather or mask gives O(1) differences).
    for variable, a, b in zip(grown.trainable_variables, compact_grads, dense_grads):
        a = np.zeros(variable.shape) if a is None else a
        b = np.zeros(variable.shape) if b is None else b
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=3e-3 * scale, err_msg=variable.path)


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("training", [True, False])
def test_compact_matches_dense_outputs_and_gradients(name, training):
    _check_compact_matches_dense(FAST[name], training)


def _complete_context(grown, static):
    """A sampled context in which every other group computes all its channels in place.

    Ragged: those groups keep all channels but channel 1 (rounded up to a multiple of 4, channel
    1 pads the set: complete, value 0) with mask values in (0.2, 0.9). Static: those groups run
    at a capacity of their full size, the others one ladder rung below it.
    """
    names = sorted(grown.channel_groups)
    full = set(names[::2])
    capacities = None
    if static:
        capacities = {
            name: group.size if name in full else capacity_ladder(group.size, 4)[-2]
            for name, group in grown.channel_groups.items()
        }
    context = grown.sample_context(
        tf.constant([4, 7], tf.int64), Temperature(), 0.5, capacities=capacities
    )
    context.training = True
    if not static:
        for index, name in enumerate(sorted(full)):
            size = grown.channel_groups[name].size
            values = tf.random.stateless_uniform([size], [index, 1], 0.2, 0.9)
            context.channels[name] = active_set(tf.range(size) != 1, values, multiple=4)
    return context


@pytest.mark.parametrize("static", [False, True], ids=["ragged", "static"])
def test_complete_groups_skip_gathers_and_still_match_dense(static):
    # A complete group reads its weights as they are (a tf.cond at run time in the ragged mode,
    # decided at trace time at a full capacity); its mask values and zeros must still apply.
    model, grown = _grown(FAST["resnet20"], channel_multiple=4)
    _randomise_logits(grown, 3)
    images = tf.random.normal([3, *model.input_shape[1:]], seed=3)

    complete = [active.complete for active in _complete_context(grown, static).channels.values()]
    assert 0 < sum(bool(c) for c in complete) < len(complete)
    if static:  # known at trace time: no gather is built at all
        assert all(c is True or c is False for c in complete)

    @tf.function
    def run(dense):
        context = _complete_context(grown, static)
        context = grown.dense_equivalent(context) if dense else context
        return _outputs_and_gradients(grown, context, images, numpy=False)

    compact_out, compact_grads = run(False)
    dense_out, dense_grads = run(True)
    np.testing.assert_allclose(compact_out, dense_out, rtol=1e-3, atol=1e-4)
    for variable, a, b in zip(grown.trainable_variables, compact_grads, dense_grads):
        a = np.zeros(variable.shape) if a is None else np.asarray(a)
        b = np.zeros(variable.shape) if b is None else np.asarray(b)
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=3e-3 * scale, err_msg=variable.path)


def test_compact_matches_dense_with_padded_widths():
    # channel_multiple 4: padding slots are computed with mask value 0 and BN runs fused.
    _check_compact_matches_dense(FAST["resnet20"], training=True, channel_multiple=4, seed=1)


def _plain_net():
    inputs = keras.Input((6, 6, 2), name="images")
    x = graphs.conv_bn(inputs, 6, 3, "stem")
    for index in (1, 2):
        y = graphs.conv_bn(x, 6, 3, f"plain{index}_a")
        x = graphs.conv_bn(y, 6, 3, f"plain{index}_b")
    return keras.Model(inputs, graphs.head(x, 3), name="plain")


@pytest.mark.parametrize("training", [True, False])
def test_compact_matches_dense_with_gated_plain_blocks(training):
    # m F(x) + (1 - m) x: the block's input and output channels are one group.
    blocks = [("stem_relu", "plain1_b_relu"), ("plain1_b_relu", "plain2_b_relu")]
    _check_compact_matches_dense(_plain_net, training, seed=2, plain_blocks=blocks)
    _, grown = _grown(_plain_net, plain_blocks=blocks)
    assert sorted(grown.gate_groups) == ["plain1_b_relu", "plain2_b_relu"]
    assert grown.graph.output_layouts["stem_relu"] == grown.graph.output_layouts["plain2_b_relu"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications_compact_matches_dense(name):
    # Inference-mode batch norm: at 32x32 their last stages are 1x1, so training-mode statistics
    # over 3 examples make gradients of ~1e3 whose rounding (oneDNN's accumulation order differs
    # between compact and dense widths) reaches 2% on MobileNetV2's first kernel. Training mode
    # is compared on the FAST models above.
    _check_compact_matches_dense(APPLICATIONS[name], training=False)


def _check_full_network_is_the_original(builder):
    model, grown = _grown(builder)
    images = tf.random.normal([4, *model.input_shape[1:]], seed=2)
    np.testing.assert_allclose(
        grown.forward(images, grown.full_context()), model(images, training=False), atol=1e-5
    )
    context = grown.full_context(training=True)
    outputs = grown.forward(images, context)
    expected_updates = [(v, np.array(value)) for v, value in context.state_updates]
    assert len(expected_updates) == 2 * sum(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers
    )
    # Training-mode dropout draws differ between the two calls (EfficientNet's drop-connect):
    # compared where no dropout is active; inference above is compared for every model.
    if any(getattr(layer, "rate", 0) for layer in model.layers):
        return
    # Batch statistics over 4 examples (ResNet50 ends at 1x1: 4 values per channel, through 53
    # batch norms): fused and Keras' unfused moments differ by up to ~3e-4 there.
    np.testing.assert_allclose(outputs, model(images, training=True), rtol=1e-3, atol=1e-3)
    for variable, value in expected_updates:  # Keras assigned its own updates in the call
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAST))
def test_full_network_computes_the_original_model(name):
    _check_full_network_is_the_original(FAST[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_applications_full_network_is_the_original(name):
    _check_full_network_is_the_original(APPLICATIONS[name])


def test_off_gated_block_is_the_identity_and_computes_nothing():
    """A residual block whose gate is off outputs x: its branch does not change the output."""
    model, grown = _grown(FAST["resnet20"], grow_layers=True)
    block = "stage1_block2_add"
    images = tf.random.normal([2, 12, 12, 3], seed=3)
    context = grown.full_context()
    context.gates[block] = tfgrow.growing.structures.Gate(tf.constant(False), tf.constant(0.7))
    before = grown.forward(images, context)
    for name in ("stage1_block2_1_conv", "stage1_block2_2_conv"):
        kernel = model.get_layer(name).kernel
        kernel.assign(kernel * 5.0)
    np.testing.assert_allclose(grown.forward(images, context), before, atol=1e-6)
    del context.gates[block]
    assert not np.allclose(grown.forward(images, context), before, atol=1e-3)
