"""L1-norm filter pruning: the smallest-norm filters go, residual ties are scored together."""

import json

import keras
import numpy as np
import pytest

from tests.fixtures import graphs
from tests.fixtures.processes import contract_problems, launch
from tfgrow.baselines import l1_pruning
from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import slicing


def set_filter_norms(layer, norms):
    """A kernel whose output filter o has L1 norm norms[o] (every entry norms[o] / size)."""
    shape = layer.kernel.shape
    per_filter = int(np.prod(shape[:-1]))
    kernel = np.broadcast_to(np.asarray(norms, np.float32) / per_filter, shape)
    layer.kernel.assign(np.array(kernel))


def test_tied_filters_are_scored_by_the_sum_of_their_norms_and_the_smallest_go():
    # a and b add into one residual stream. Alone, a would keep filters {0, 3} and b {1, 2};
    # the sums 5, 4, 3.5, 2 keep {0, 1}.
    model = graphs.residual_add()
    graph = graph_lib.analyze(model)
    set_filter_norms(model.get_layer("a"), [5.0, 0.0, 1.0, 2.0])
    set_filter_norms(model.get_layer("b"), [0.0, 4.0, 2.5, 0.0])
    scores = l1_pruning.filter_scores(model, graph)
    stream = graph.group_names.index("a")
    np.testing.assert_allclose(scores[stream], [5.0, 4.0, 3.5, 2.0], rtol=1e-5)
    widths = graph.full_widths()
    widths[stream] = 2
    keep = l1_pruning.kept_filters(graph, scores, widths)
    assert list(keep[stream]) == [0, 1]
    pruned = slicing.rebuild_with_weights(model, graph, keep)
    np.testing.assert_array_equal(
        pruned.get_layer("b").kernel.numpy(),
        model.get_layer("b").kernel.numpy()[:, :, [0, 1]][..., [0, 1]],
    )
    # Fixed groups (the logits) keep every channel.
    logits = graph.group_names.index("logits")
    assert list(keep[logits]) == list(range(3))


@pytest.mark.slow
def test_a_tiny_l1_run_removes_the_smallest_norm_filters_and_meets_the_budget(tmp_path):
    result = launch(
        tmp_path, "configs/experiments/fashion_mnist_resnet20_l1_pruning.gin", "configs/tiny.gin"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    assert summary["params"] <= 0.3 * summary["params_full"]
    pretrained = keras.models.load_model(tmp_path / l1_pruning.PRETRAINED_MODEL_FILE)
    graph = graph_lib.analyze(pretrained)
    scores = l1_pruning.filter_scores(pretrained, graph)
    kept = summary["l1_pruning"]["kept_filters"]
    assert len(kept) == int((~graph.fixed).sum())
    for name, indices in kept.items():
        group = scores[graph.group_names.index(name)]
        removed = np.setdiff1d(np.arange(len(group)), indices)
        assert group[removed].max() <= group[indices].min()
    # 10 pretraining steps at full width + 10 fine-tuning steps of the pruned network, against
    # 10 full-width steps: savings = 1 / (1 + flops / flops_full).
    assert summary["steps"] == 20
    expected = 1.0 / (1.0 + summary["flops"] / summary["flops_full"])
    assert summary["train_cost_savings"] == pytest.approx(expected, rel=1e-9)
