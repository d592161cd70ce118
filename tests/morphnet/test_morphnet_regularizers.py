"""FLOPs and size gamma regularisers and cost() against hand computations (METHOD.md §2)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import graphs
from tfgrow.graph import counting, slicing
from tfgrow.graph.analysis import analyze
from tfgrow.morphnet.regularizers import GammaRegularizer


def regularizer_for(model, resource="flops"):
    return GammaRegularizer(model, analyze(model), resource, gamma_threshold=1e-2)


def gamma_gradients(model, regularizer):
    with tf.GradientTape() as tape:
        term = regularizer.regularization_term()
    gammas = [layer.gamma for layer in regularizer.bn_layers]
    return float(term), {
        layer.name: grad.numpy()
        for layer, grad in zip(regularizer.bn_layers, tape.gradient(term, gammas))
    }


def test_plain_chain_cost_regulariser_and_gradients():
    # c1: C = 288, |A| = 2 (fixed input), alive out {1.0, 0.5} = 2 (0.001 < threshold).
    # c2: C = 32, |A| = 2, alive out {2.0, 0.3} = 2. dense: C = 2, |A| = 2, |B| = 5 (fixed).
    # F = 288*2*2 + 32*2*2 + 2*2*5 = 1300.
    # G = 288*(2*1.501 + 2*0) + 32*(2*2.3 + 2*1.501) + 2*(2*0 + 5*2.3) = 864.576 + 243.264 + 23.
    model = graphs.plain_chain()
    graphs.set_gammas(model, {"c1_bn": [1.0, 0.5, 0.001], "c2_bn": [2.0, 0.0, 0.0, -0.3]})
    regularizer = regularizer_for(model)
    assert float(regularizer.cost()) == 1300
    term, grads = gamma_gradients(model, regularizer)
    assert term == pytest.approx(864.576 + 243.264 + 23.0, rel=1e-6)
    # dG/d|gamma_c1| = 288 * |A_c1| (c1's output) + 32 * |B_c2| (c2's input) = 640;
    # dG/d|gamma_c2| = 32 * 2 + 2 * 5 = 74, times sign(gamma) (it pushes |gamma| down; the
    # subgradient of |.| at 0 is 0).
    np.testing.assert_allclose(grads["c1_bn"], [640, 640, 640])
    np.testing.assert_allclose(grads["c2_bn"], [74, 0, 0, -74])
    # Model size: C = kh * kw (dense 1): 9*2*2 + 1*2*2 + 1*2*5 = 50.
    assert float(regularizer_for(model, "size").cost()) == 50


def test_residual_add_ties_members_into_one_linf_group():
    # a and b are one group of 4: r = max(|gamma_a|, |gamma_b|) = [1, 0.5, 0, 0.001], alive 2.
    # F = 288*2*2 (a) + 288*2*2 (b) + 2*2*3 = 2316.
    # G = 288*(2*1.501) + 288*(2*1.501 + 2*1.501) + 2*(3*1.501) = 864.576 + 1729.152 + 9.006.
    model = graphs.residual_add()
    graph = analyze(model)
    assert graph.output_layouts["a"] == graph.output_layouts["b"] == graph.output_layouts["add"]
    graphs.set_gammas(model, {"a_bn": [1.0, 0.0, 0.0, 0.001], "b_bn": [0.0, 0.5, 0.0, 0.0]})
    regularizer = regularizer_for(model)
    assert float(regularizer.cost()) == 2316
    term, grads = gamma_gradients(model, regularizer)
    assert term == pytest.approx(864.576 + 1729.152 + 9.006, rel=1e-6)
    # L-inf: only the member holding the max gets the gradient, 288*2 (a out) + 288*2*2 (b in and
    # out) + 2*3 (dense in) = 1734.
    np.testing.assert_allclose(grads["a_bn"][[0, 3]], [1734, 1734])
    np.testing.assert_allclose(grads["b_bn"][[0, 1, 3]], [0, 1734, 0])
    np.testing.assert_allclose(grads["a_bn"][1], 0)


def test_concat_partitions_into_its_inputs_groups():
    # p: alive {1, 0.5} = 2 of 3; q: alive {0.2} = 1 of 2; r sees |A| = 3, Σ r_in = 1.7.
    # F = 32*2*2 + 32*2*1 + 288*3*4 + 2*4*2 = 3664.
    # G = 32*(2*1.5) + 32*(2*0.2) + 288*(3*4 + 4*1.7) + 2*(2*4) = 96 + 12.8 + 5414.4 + 16.
    model = graphs.concat()
    graph = analyze(model)
    assert graph.output_layouts["concat"] == graph.output_layouts["p"] + graph.output_layouts["q"]
    graphs.set_gammas(
        model, {"p_bn": [1.0, 0.0, 0.5], "q_bn": [0.2, 0.0], "r_bn": [1.0, 1.0, 1.0, 1.0]}
    )
    regularizer = regularizer_for(model)
    assert float(regularizer.cost()) == 3664
    term, _ = gamma_gradients(model, regularizer)
    assert term == pytest.approx(96 + 12.8 + 5414.4 + 16, rel=1e-6)


def test_depthwise_cost_and_regulariser():
    # e and the depthwise conv d share a group: r = max(|gamma_e|, |gamma_d|) = [1, 0.3, 0].
    # F = 32*2*2 (e) + 288*2 (d: C |B|) + 32*2*2 (f) + 2*2*2 = 840.
    # G = 32*(2*1.3) + 288*(1.3 + 1.3) + 32*(2*2 + 2*1.3) + 2*(2*2) = 83.2 + 748.8 + 211.2 + 8.
    model = graphs.depthwise()
    graphs.set_gammas(model, {"e_bn": [1.0, 0.0, 0.0], "d_bn": [0.0, 0.3, 0.0], "f_bn": [1, 1]})
    regularizer = regularizer_for(model)
    assert float(regularizer.cost()) == 840
    term, _ = gamma_gradients(model, regularizer)
    assert term == pytest.approx(83.2 + 748.8 + 211.2 + 8, rel=1e-6)
    # Size: 1*2*2 + 9*2 + 1*2*2 + 1*2*2 = 30.
    assert float(regularizer_for(model, "size").cost()) == 30


def test_a_group_with_no_alive_channel_keeps_one():
    # q's gammas are all below the threshold: rebuild keeps its best channel, and cost() counts
    # the network rebuild produces: F = 32*2*2 + 32*2*1 + 288*3*4 + 2*4*2 = 3664.
    model = graphs.concat()
    graphs.set_gammas(model, {"p_bn": [1.0, 0.0, 0.5], "q_bn": [0.005, 0.0], "r_bn": [1] * 4})
    assert float(regularizer_for(model).cost()) == 3664


@pytest.mark.parametrize(
    "build", [graphs.plain_chain, graphs.residual_add, graphs.concat, graphs.depthwise]
)
@pytest.mark.parametrize("resource", ["flops", "size"])
def test_cost_equals_the_counted_cost_of_the_rebuilt_model(build, resource):
    model = build()
    graphs.randomize_batch_norms(model, seed=1)
    rng = np.random.default_rng(2)
    for layer in model.layers:
        if hasattr(layer, "gamma"):  # about half the channels dead
            layer.gamma.assign(layer.gamma * (rng.uniform(size=layer.gamma.shape) > 0.5))
    regularizer = regularizer_for(model, resource)
    rebuilt = slicing.rebuild_with_weights(model, regularizer.graph, regularizer.keep_alive())
    params, flops = counting.count_model(rebuilt)
    if resource == "flops":
        assert float(regularizer.cost()) == flops
    else:
        kernel_weights = sum(
            int(np.prod(w.shape)) for w in rebuilt.trainable_weights if "kernel" in w.path
        )
        assert float(regularizer.cost()) == kernel_weights
