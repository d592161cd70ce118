"""Channel groups from the Keras functional graph: ties, splits, pass-through and errors."""

import keras
import numpy as np
import pytest

from tests.fixtures import graphs
from tfgrow.graph.analysis import UnsupportedLayerError, analyze
from tfgrow.models.keras_resnet import keras_resnet_cifar
from tfgrow.models.mobilenet_v1 import mobilenet_v1

L = keras.layers


def group_of(graph, layer_name):
    (group,) = graph.output_layouts[layer_name]
    return graph.group_names[group]


def test_resnet20_has_one_group_per_stage_stream_and_one_per_block_inner_conv():
    graph = analyze(keras_resnet_cifar((28, 28, 1), 10))
    # Stage streams: the stem with stage 1's second convs; stage 2/3 shortcut with second convs.
    assert {group_of(graph, f"stage1_block{b}_2_conv") for b in (1, 2, 3)} == {"stem_conv"}
    stage2 = {group_of(graph, f"stage2_block{b}_2_conv") for b in (1, 2, 3)}
    assert stage2 == {group_of(graph, "stage2_block1_shortcut_conv")}
    # 3 streams + 9 inner convs + input + logits.
    assert graph.num_groups == 14
    assert graph.fixed_groups == {"images": "model input", "logits": "model output"}
    assert graph.cost(graph.full_widths(), "flops") == 62_043_904  # README: 62.0M


def test_mobilenet_v1_ties_each_pointwise_output_to_the_next_depthwise():
    graph = analyze(mobilenet_v1((32, 32, 3), 10))
    assert graph.output_layouts["block1_pointwise"] == graph.output_layouts["block2_depthwise"]
    assert graph.num_groups == 1 + 1 + 13 + 1  # input, stem, 13 pointwise, logits


def test_squeeze_excitation_multiply_ties_the_gate_to_the_features():
    inputs = keras.Input((4, 4, 3))
    x = graphs.conv_bn(inputs, 8, 1, "expand")
    squeezed = L.GlobalAveragePooling2D(name="squeeze")(x)
    squeezed = L.Reshape((1, 1, 8), name="reshape")(squeezed)
    reduced = L.Conv2D(2, 1, activation="relu", name="se_reduce")(squeezed)
    gate = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(reduced)
    x = L.Multiply(name="excite")([x, gate])
    outputs = L.Dense(2, name="logits")(L.Flatten(name="flatten")(x))
    graph = analyze(keras.Model(inputs, outputs))
    assert group_of(graph, "se_expand") == group_of(graph, "expand") == "expand"
    assert graph.fixed_groups["se_reduce"] == "no BatchNormalization gamma scales it"
    # Flatten repeats the 8-channel group once per position: the dense reads 16 copies.
    assert graph.input_layouts["logits"] == graph.output_layouts["expand"] * 16


def test_producers_without_batch_norm_are_prunable_only_when_no_gamma_is_required():
    model = graphs.no_batch_norm()
    morphnet = analyze(model)  # MorphNet regularises gammas: nothing to prune here
    reason = "no BatchNormalization gamma scales it"
    assert {morphnet.fixed_groups[name] for name in ("c1", "c2", "hidden")} == {reason}
    growing = analyze(model, gamma_required=False)  # growing masks producers' outputs
    assert growing.fixed_groups == {"images": "model input", "logits": "model output"}
    assert growing.cost(growing.full_widths(), "size") == morphnet.cost(
        morphnet.full_widths(), "size"
    )


def test_fixed_layers_keep_their_group_full_and_unknown_names_are_refused():
    model = keras_resnet_cifar((28, 28, 1), 10)
    # Fixing one conv of a residual stream fixes the whole stream: its channels are tied.
    graph = analyze(model, fixed_layers=("stage2_block2_2_conv",))
    stream = group_of(graph, "stage2_block1_shortcut_conv")
    assert graph.fixed_groups[stream] == "kept at full width (fixed_layers: 'stage2_block2_2_conv')"
    assert len(graph.fixed_groups) == 3  # input, logits and that stream
    with pytest.raises(ValueError, match=r"in fixed_layers\. Received: 'stage9'; the model has"):
        analyze(model, fixed_layers=("stage9",))


def test_bn_after_a_concat_scores_each_input_group():
    inputs = keras.Input((4, 4, 2))
    p = L.Conv2D(3, 1, name="p")(inputs)
    q = L.Conv2D(2, 1, name="q")(inputs)
    x = L.BatchNormalization(name="bn")(L.Concatenate(name="concat")([p, q]))
    graph = analyze(keras.Model(inputs, L.Dense(2, name="logits")(x)))
    assert graph.gamma_layers == ["bn"]
    assert not graph.fixed[graph.output_layouts["p"][0]]
    assert not graph.fixed[graph.output_layouts["q"][0]]


@pytest.mark.parametrize(
    "make_layer, name",
    [
        (lambda: L.LayerNormalization(name="ln"), "ln"),
        (lambda: L.Lambda(lambda t: t * 2, name="doubling"), "doubling"),
        (lambda: L.Conv2D(4, 3, groups=2, padding="same", name="grouped"), "grouped"),
        (lambda: L.Conv2DTranspose(4, 3, padding="same", name="transposed"), "transposed"),
    ],
    ids=["layer_norm", "lambda", "grouped_conv", "transposed_conv"],
)
def test_an_unsupported_layer_stops_with_an_error_that_names_it(make_layer, name):
    inputs = keras.Input((4, 4, 4))
    x = graphs.conv_bn(inputs, 4, 1, "c")
    x = make_layer()(x)
    outputs = L.Dense(2, name="logits")(L.GlobalAveragePooling2D()(x))
    with pytest.raises(UnsupportedLayerError, match=f"layer '{name}'"):
        analyze(keras.Model(inputs, outputs))


def test_adding_a_concat_to_an_unsplit_tensor_is_refused_by_name():
    inputs = keras.Input((4, 4, 2))
    joined = L.Concatenate(name="concat")([L.Conv2D(2, 1)(inputs), L.Conv2D(2, 1)(inputs)])
    x = L.Add(name="mixed_add")([joined, L.Conv2D(4, 1)(inputs)])
    with pytest.raises(UnsupportedLayerError, match="'mixed_add'.*1x1 conv"):
        analyze(keras.Model(inputs, L.Dense(2)(L.Flatten()(x))))


def test_structure_json_round_trips_and_tied_layers_must_agree():
    graph = analyze(keras_resnet_cifar((28, 28, 1), 10))
    widths = graph.full_widths() // 2
    widths[graph.fixed] = graph.group_sizes[graph.fixed]
    structure = graph.structure(widths)
    assert structure["stage3_block2_2_conv"] == 32 and structure["logits"] == 10
    np.testing.assert_array_equal(graph.widths_from_structure(structure), widths)
    structure["stage3_block3_2_conv"] = 31  # tied to stage3_block2_2_conv (32)
    with pytest.raises(ValueError, match="need one width"):
        graph.widths_from_structure(structure)
