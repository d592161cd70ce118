"""MorphNet on a model with recurrent layers stops with a message naming the layer."""

import pytest

from tests.fixtures import sequences
from tfgrow.graph.analysis import UnsupportedLayerError, analyze
from tfgrow.morphnet.regularizers import GammaRegularizer, check_regularizable


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
def test_gamma_regularizer_refuses_recurrent_layers_by_name(rnn):
    model = sequences.language_model(rnn)
    graph = analyze(model)  # the growing engine's analysis takes it
    with pytest.raises(UnsupportedLayerError, match="'embedding'.*no gamma.*tfgrow.grow"):
        GammaRegularizer(model, graph, "flops", 1e-2)
    with pytest.raises(UnsupportedLayerError, match="MorphNet cannot learn"):
        check_regularizable(model)
