"""The step-time benchmark's graph-engine rows compare like with like: same widths, same layers."""

import keras
import tensorflow as tf

from benchmarks import step_time
from tfgrow.graph import count_model

L = keras.layers


def test_graph_stock_model_has_the_growing_models_widths_and_its_layers():
    network = step_time.growing_model("mobilenet_v1", multiple=1)
    widths = step_time.set_fraction(network, 0.25)
    stock = step_time.stock_model(network, widths)
    graph = network.graph
    sizes = dict(zip(graph.group_names, graph.group_sizes))
    assert len(widths) == 14  # the stem and 13 pointwise convs; the logits group is fixed
    for name, width in widths.items():
        assert width == max(1, round(0.25 * sizes[name]))
    for layer in network.source.layers:
        rebuilt = stock.get_layer(layer.name)
        assert type(rebuilt) is type(layer)
        if isinstance(layer, L.Conv2D) and not isinstance(layer, L.DepthwiseConv2D):
            assert rebuilt.filters == widths[graph.group_names[graph.output_layouts[layer.name][0]]]
    # Every group at a quarter: about 1/16 of the convs' FLOPs (the stem reads 3 fixed channels).
    flops = count_model(stock)[1] / count_model(network.source)[1]
    assert 0.25**2 * 0.9 < flops < 0.25 * 1.1
    full = step_time.stock_model(network, step_time.set_fraction(network, 1.0))
    assert count_model(full) == count_model(network.source)
    assert [tuple(v.shape) for v in full.weights] == [
        tuple(v.shape) for v in network.source.weights
    ]


def test_graph_ops_count_the_functions_a_step_calls_and_both_cond_branches():
    inner = tf.function(lambda x: tf.sin(x) * 2.0 + 1.0)
    x = tf.constant([1.0, 2.0])
    alone = step_time.graph_ops(lambda x: tf.sin(x) * 2.0 + 1.0, x)
    # The call adds the callee's graph, not just a call op.
    assert step_time.graph_ops(lambda x: inner(x), x) > alone
    branched = step_time.graph_ops(
        lambda x: tf.cond(x[0] > 0, lambda: tf.sin(x) * 2.0 + 1.0, lambda: tf.cos(x) - 1.0), x
    )
    assert branched > alone + 2  # the untaken branch is part of the step's graph
