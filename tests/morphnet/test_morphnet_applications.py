"""MorphNet on stock keras.applications architectures (weights=None: nothing downloads).

MobileNet (depthwise), MobileNetV2 (ZeroPadding, depthwise, residual adds), ResNet50 (adds),
DenseNet121 (concats read by BNs), EfficientNetB0 (squeeze-excite Multiply, Rescaling and
Normalization): analysis, regulariser, cost and rebuild succeed and the rebuilt model runs.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgrow.graph import counting, slicing
from tfgrow.graph.analysis import analyze
from tfgrow.morphnet.regularizers import GammaRegularizer, keep_top

A = keras.applications


@pytest.mark.parametrize(
    "architecture",
    [A.MobileNet, A.MobileNetV2, A.ResNet50, A.DenseNet121, A.EfficientNetB0],
    ids=lambda f: f.__name__,
)
def test_analysis_regulariser_cost_and_rebuild(architecture):
    model = architecture(input_shape=(32, 32, 3), weights=None, classes=10)
    graph = analyze(model)
    assert graph.cost(graph.full_widths(), "flops") == counting.count_model(model)[1]
    regularizer = GammaRegularizer(model, graph, "flops", gamma_threshold=1e-2)
    gammas = [layer.gamma for layer in regularizer.bn_layers]
    with tf.GradientTape() as tape:
        term = regularizer.regularization_term()
    gradients = tape.gradient(term, gammas)
    # Every gamma of the model is regularised, and pushed down (gammas start at 1).
    assert len(gammas) == sum(
        isinstance(layer, keras.layers.BatchNormalization) and layer.scale for layer in model.layers
    )
    assert all(g is not None and float(tf.reduce_min(g)) >= 0 for g in gradients)
    assert float(regularizer.cost()) == counting.count_model(model)[1]
    # Half of every prunable group, best channels first; the rebuilt model runs.
    widths = np.where(graph.fixed, graph.group_sizes, np.maximum(1, graph.group_sizes // 2))
    keep = keep_top(graph, regularizer.scores_numpy(), widths)
    rebuilt = slicing.rebuild_with_weights(model, graph, keep)
    assert counting.count_model(rebuilt)[1] == graph.cost(widths, "flops")
    outputs = rebuilt(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32"))
    assert outputs.shape == (2, 10) and np.all(np.isfinite(outputs))
