"""Compact execution computes exactly what the masked full-width network computes.

DESIGN.md, "Compact execution": for the same sampled masks, running only the active channels and
blocks must give the outputs and the gradients of the full-width network whose unsampled
structures are multiplied by 0.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfgrow.masks import Temperature
from tfgrow.models import basic3resnet, plain3net, resnet_cifar, vgg16

BUILDERS = {
    "resnet20": lambda: resnet_cifar((12, 12, 3), 5, widths=(8, 12, 16)),
    "basic3resnet": lambda: basic3resnet((12, 12, 1), 5, max_blocks_per_stage=3, widths=(8, 8, 12)),
    "plain3net": lambda: plain3net((12, 12, 1), 5, max_blocks_per_stage=3, widths=(8, 8, 12)),
    "vgg16": lambda: vgg16((8, 8, 3), 5, plan=(8, 8, "M", 12, "M", 16), hidden_units=10),
}


def _randomise_logits(network, seed):
    rng = np.random.default_rng(seed)
    for group in network.group_variables().values():
        group.logits.assign(rng.normal(0.0, 1.5, group.logits.shape).astype(np.float32))
        group.counters.assign(rng.uniform(0.0, 2.0, group.counters.shape).astype(np.float32))


def _run(network, context, images):
    variables = network.trainable_variables
    with tf.GradientTape() as tape:
        outputs = network.forward(images, context)
        loss = tf.reduce_sum(tf.sin(outputs))
    gradients = tape.gradient(loss, variables)
    return outputs, [tf.convert_to_tensor(g) if g is not None else None for g in gradients]


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("channel_multiple", [1, 4])
def test_compact_and_dense_agree_in_outputs_and_gradients(name, training, channel_multiple):
    tf.keras.utils.set_random_seed(1)
    network = BUILDERS[name]()
    network.channel_multiple = channel_multiple  # 4: zero-valued padding channels computed too
    _randomise_logits(network, seed=2)
    images = tf.random.normal([6, *network.input_spec_shape])
    temperature = Temperature(num_epochs=4)
    if training:
        compact = network.sample_context(tf.constant([4, 2]), temperature, 1.0)
    else:
        compact = network.deterministic_context(temperature, 1.0)
    dense = network.dense_equivalent(compact)
    compact_out, compact_grads = _run(network, compact, images)
    dense_out, dense_grads = _run(network, dense, images)
    np.testing.assert_allclose(compact_out, dense_out, rtol=1e-4, atol=1e-4)
    checked = 0
    for variable, g_compact, g_dense in zip(
        network.trainable_variables, compact_grads, dense_grads
    ):
        if g_dense is None:
            assert g_compact is None or not np.any(g_compact.numpy()), variable.path
            continue
        scale = max(1e-3, float(tf.reduce_max(tf.abs(g_dense))))
        np.testing.assert_allclose(
            g_compact if g_compact is not None else tf.zeros_like(g_dense),
            g_dense,
            atol=2e-3 * scale,
            err_msg=variable.path,
        )
        checked += 1
    assert checked > 10


def test_masked_structures_are_not_computed():
    network = resnet_cifar((8, 8, 1), 3, widths=(8, 8, 8))
    context = network.deterministic_context(None, 0.0)  # the one-filter seed
    compact = network.forward(tf.ones([2, 8, 8, 1]), context)
    assert compact.shape == (2, 3)
    stem_output = network.layer_sequence[0](tf.ones([2, 8, 8, 1]), context=context)
    assert stem_output.shape[-1] == 1  # only the seed channel of group stage1 is computed


def test_off_block_is_skipped_and_its_output_is_its_input():
    network = basic3resnet((8, 8, 1), 3, max_blocks_per_stage=2, widths=(4, 4, 4))
    context = network.deterministic_context(None, 0.0)
    block = next(layer for layer in network.layer_sequence if getattr(layer, "gated", False))
    x = tf.random.uniform([2, 8, 8, 1])
    assert not bool(context.gates[block.name].on)
    np.testing.assert_array_equal(block(x, context=context), x)


@pytest.mark.parametrize("filters", [8, 6])  # 8 channels: fused BN op; 6: unfused moments
def test_batch_norm_normalises_and_updates_with_the_biased_batch_variance(filters):
    from tfgrow.execution import ExecutionContext
    from tfgrow.layers.conv import GrowableConv2D

    tf.keras.utils.set_random_seed(3)
    layer = GrowableConv2D(filters, 3, activation="linear", name="conv")
    images = tf.random.normal([4, 6, 6, 2]) * 3.0 + 1.0
    layer.build(images.shape)
    layer.gamma.assign(tf.linspace(0.5, 2.0, filters))
    layer.beta.assign(tf.linspace(-1.0, 1.0, filters))
    context = ExecutionContext(training=True)
    outputs = layer(images, context=context)

    conv = tf.nn.conv2d(images, layer.kernel, 1, "SAME").numpy()
    mean, variance = conv.mean(axis=(0, 1, 2)), conv.var(axis=(0, 1, 2))  # biased
    expected = (conv - mean) / np.sqrt(variance + layer.batch_norm_epsilon)
    expected = expected * layer.gamma.numpy() + layer.beta.numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)
    updates = {variable.name: value.numpy() for variable, value in context.state_updates}
    momentum = layer.batch_norm_momentum
    np.testing.assert_allclose(updates["moving_mean"], (1 - momentum) * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        updates["moving_variance"], momentum + (1 - momentum) * variance, rtol=1e-4
    )
