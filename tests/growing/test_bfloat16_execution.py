"""The graph engine under `mixed_bfloat16` (issue 14): it computes in bfloat16, keeps its
masks, batch-norm statistics and outputs in float32, compact and dense execution of the same
sampled masks still agree (to bfloat16 rounding), and its export is float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend import AutocastScope

from tests.growing.test_execution import FAST, _grown, _outputs_and_gradients, _randomise_logits
from tfgrow.export import MIXED_OUTPUT_TOLERANCE, check_outputs, plain_model
from tfgrow.masks import Temperature
from tfgrow.precision import dtype_policy_scope


def _mixed_grown(name, seed=0):
    with dtype_policy_scope("mixed_bfloat16"):
        model, grown = _grown(FAST[name], seed)
    _randomise_logits(grown, seed)
    return model, grown


def _sampled(grown, seed, training):
    context = grown.sample_context(tf.constant([seed, 7], tf.int64), Temperature(), 0.5)
    context.training = training
    return context


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v1"])
@pytest.mark.parametrize("training", [True, False])
def test_compact_matches_dense_in_bfloat16(name, training):
    model, grown = _mixed_grown(name)
    images = tf.random.normal([4, *model.input_shape[1:]], seed=0)
    context = _sampled(grown, 0, training)
    compact_out, compact_grads = _outputs_and_gradients(grown, context, images)
    dense_out, dense_grads = _outputs_and_gradients(grown, grown.dense_equivalent(context), images)
    widths, _ = grown.widths_and_blocks(context)
    assert any(float(widths[n]) < g.size for n, g in grown.channel_groups.items()), "no pruning"
    assert compact_out.dtype == dense_out.dtype == tf.float32
    # bfloat16 keeps 8 significant bits (0.4% per rounding); compact and dense round different
    # sums, so outputs agree to ~2% of their scale. A wrong gather or mask is O(1) of it.
    scale = max(1.0, float(np.abs(dense_out).max()))
    np.testing.assert_allclose(compact_out, dense_out, atol=2e-2 * scale, rtol=0)
    relative = []
    for variable, a, b in zip(grown.trainable_variables, compact_grads, dense_grads):
        for gradient in (a, b):  # float32 variables get float32 gradients
            assert gradient is None or gradient.dtype == np.float32, variable.path
        a = np.zeros(variable.shape, np.float32) if a is None else a
        b = np.zeros(variable.shape, np.float32) if b is None else b
        norm = np.linalg.norm(b)
        if norm > 1e-3:
            relative.append(np.linalg.norm(a - b) / norm)
        else:
            assert np.linalg.norm(a) < 5e-2, variable.path
    # Gradients agree per variable to bfloat16 rounding (measured: max 0.8%, median ~0; both
    # passes compute the same bfloat16 products, the dense one with exact zeros); a wrong mask or
    # gather differs by ~1.
    assert relative and max(relative) < 0.05, max(relative)
    assert np.median(relative) < 0.01, np.median(relative)


def _op_dtypes(grown, context_fn, images):
    """{op type: set of (attribute, dtype)} of one traced forward pass."""

    @tf.function(autograph=False)
    def forward(images):
        return grown.forward(images, context_fn())

    graph = forward.get_concrete_function(images).graph
    found = {}
    for op in graph.get_operations():
        for attribute in ("T", "U"):
            if op.type in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "FusedBatchNormV3"):
                try:
                    found.setdefault(op.type, set()).add((attribute, op.get_attr(attribute)))
                except ValueError:
                    pass
    return found


def test_convolutions_compute_in_bfloat16_and_batch_norm_statistics_in_float32():
    model, grown = _mixed_grown("mobilenet_v1")
    grown.channel_multiple = 4  # multiples of 4: batch norm runs fused (FusedBatchNormV3)
    images = tf.random.normal([2, *model.input_shape[1:]], seed=1)
    found = _op_dtypes(grown, lambda: _sampled(grown, 0, True), images)
    assert found["Conv2D"] == {("T", tf.bfloat16)}
    assert found["DepthwiseConv2dNative"] == {("T", tf.bfloat16)}
    assert found["MatMul"] == {("T", tf.bfloat16)}
    # Fused batch norm: float32 scale, offset and moments. At widths unknown at trace time
    # (sampled, ragged) it normalises in float32 between casts (its bfloat16 kernel is slow
    # there, tfgrow.compact.batch_norm); at static widths, bfloat16 activations.
    assert found["FusedBatchNormV3"] == {("T", tf.float32), ("U", tf.float32)}
    static = _op_dtypes(grown, lambda: grown.full_context(training=True), images)
    assert static["Conv2D"] == {("T", tf.bfloat16)}
    assert static["FusedBatchNormV3"] == {("T", tf.bfloat16), ("U", tf.float32)}


def test_masks_statistics_penalty_and_outputs_stay_float32():
    model, grown = _mixed_grown("resnet20")
    images = tf.random.normal([4, *model.input_shape[1:]], seed=2)
    batch_norm = [
        layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    ]
    before = [layer.moving_mean.numpy().copy() for layer in batch_norm]
    # Inside a mixed model's call (Keras fit) every float variable without autocast=False is
    # read as bfloat16; the masks and the statistics must not be.
    with AutocastScope("bfloat16"):
        group = next(iter(grown.channel_groups.values()))
        assert tf.convert_to_tensor(group.logits).dtype == tf.float32
        assert tf.convert_to_tensor(group.counters).dtype == tf.float32
        assert group.probabilities(Temperature(), 0.5).dtype == tf.float32
        assert all(
            tf.convert_to_tensor(layer.moving_variance).dtype == tf.float32 for layer in batch_norm
        )
        channel_term, layer_term = grown.mask_penalty(Temperature(), 0.5)
        context = _sampled(grown, 0, True)
        outputs = grown.forward(images, context)
    assert channel_term.dtype == tf.float32 and outputs.dtype == tf.float32
    assert all(active.values.dtype == tf.float32 for active in context.channels.values())
    updates = dict((id(v), value) for v, value in context.state_updates)
    changed = 0
    for layer, old in zip(batch_norm, before):
        new = updates[id(layer.moving_mean)]
        assert new.dtype == tf.float32 and layer.moving_mean.dtype == "float32"
        changed += not np.array_equal(new.numpy(), old)
    # The batch moments reached the updates (blocks whose gate is off keep their statistics).
    assert changed >= 3, changed


def test_export_of_a_bfloat16_network_is_float32_and_matches_its_inference():
    model, grown = _mixed_grown("resnet20")
    plain = plain_model(grown, Temperature(), 0.5)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    assert {v.dtype for v in plain.weights} == {"float32"}
    images = np.random.default_rng(0).normal(size=(8, *model.input_shape[1:])).astype("float32")
    assert plain(images).dtype == "float32"
    # Against the bfloat16 inference: bfloat16 tolerance (MIXED_OUTPUT_TOLERANCE).
    difference = check_outputs(grown, Temperature(), 0.5, plain)
    scale = max(1.0, float(np.abs(plain(images)).max()))
    assert 0 < difference < MIXED_OUTPUT_TOLERANCE["bfloat16"] * scale
    # The same weights restored into a float32 network: float32 agreement (OUTPUT_TOLERANCE).
    with dtype_policy_scope("float32"):
        _, float32_grown = _grown(FAST["resnet20"], 0)
    for v, w in zip(float32_grown.variables, grown.variables):
        v.assign(w)
    assert float32_grown.compute_dtype == "float32"
    assert check_outputs(float32_grown, Temperature(), 0.5, plain) < 1e-4 * scale
    print(f"bfloat16 inference vs float32 export: {difference:.3g} of outputs up to {scale:.3g}")
