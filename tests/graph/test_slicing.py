"""`GraphEdits` in the one weight slicer: output scales fold into weights where that is exact and
become a `Rescaling` layer where it is not, bypassed layers leave the graph, mixes add a skip."""

import keras
import numpy as np

from tests.fixtures import graphs
from tfgrow.graph import analyze, slicing

L = keras.layers


def _model():
    """images -> a (1x1, 3, relu) -> b (1x1, 3) + BN; add(a, b_bn) -> pool -> dense(2)."""
    inputs = keras.Input(graphs.INPUT_SHAPE, name="images")
    a = L.Conv2D(3, 1, activation="relu", name="a")(inputs)
    b = L.Conv2D(3, 1, use_bias=False, name="b")(a)
    b = L.BatchNormalization(name="b_bn")(b)
    x = L.Add(name="add")([a, b])
    return keras.Model(inputs, graphs.head(x, 2), name="tiny")


def _setup(seed=0):
    keras.utils.set_random_seed(seed)
    model = _model()
    graphs.randomize_batch_norms(model, seed)
    images = np.random.default_rng(seed).normal(size=(2, *graphs.INPUT_SHAPE)).astype("float32")
    keep = [np.arange(int(size)) for size in analyze(model).group_sizes]
    return model, analyze(model), keep, images


def _outputs(model, images, *names):
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    values = probe(images)
    return [np.asarray(value) for value in (values if len(names) > 1 else [values])]


def test_output_scales_fold_into_weights_or_become_a_rescaling_layer():
    model, graph, keep, images = _setup()
    (a,) = _outputs(model, images, "a")
    for factor, rescaled in (([0.5, 2.0, 1.5], False), ([0.5, -2.0, 1.5], True)):
        # relu(v z) = v relu(z) only for v > 0: a negative factor cannot enter the kernel.
        edits = slicing.GraphEdits(output_scales={"a": np.array(factor)})
        rebuilt = slicing.rebuild_with_weights(model, graph, keep, edits=edits)
        names = {layer.name for layer in rebuilt.layers}
        assert ("a_scale" in names) == rescaled
        (scaled,) = _outputs(rebuilt, images, "a_scale" if rescaled else "a")
        np.testing.assert_allclose(scaled, a * np.array(factor), rtol=1e-5, atol=1e-6)


def test_a_scaled_batch_norm_scales_gamma_and_beta():
    model, graph, keep, images = _setup()
    (expected,) = _outputs(model, images, "b_bn")
    edits = slicing.GraphEdits(output_scales={"b_bn": np.float32(0.25)})
    rebuilt = slicing.rebuild_with_weights(model, graph, keep, edits=edits)
    (scaled,) = _outputs(rebuilt, images, "b_bn")
    np.testing.assert_allclose(scaled, 0.25 * expected, rtol=1e-5, atol=1e-6)


def test_bypass_removes_the_add_and_its_branch_and_mix_adds_a_scaled_skip():
    model, graph, keep, images = _setup()
    a, b_bn, pool = _outputs(model, images, "a", "b_bn", "pool")
    bypassed = slicing.rebuild_with_weights(
        model, graph, keep, edits=slicing.GraphEdits(bypass={"add": "a"})
    )
    assert {"add", "b", "b_bn"}.isdisjoint(layer.name for layer in bypassed.layers)
    np.testing.assert_allclose(_outputs(bypassed, images, "pool")[0], a.mean((1, 2)), atol=1e-6)
    mixed = slicing.rebuild_with_weights(
        model, graph, keep, edits=slicing.GraphEdits(mixes={"b_bn": ("a", 0.3)})
    )
    (mix,) = _outputs(mixed, images, "b_bn_mix")
    np.testing.assert_allclose(mix, b_bn + 0.3 * a, rtol=1e-5, atol=1e-6)
    # The add now reads the mix: a + (b_bn + 0.3 a).
    expected_pool = (a + b_bn + 0.3 * a).mean((1, 2))
    np.testing.assert_allclose(_outputs(mixed, images, "pool")[0], expected_pool, atol=1e-5)
    assert not np.allclose(expected_pool, pool)
