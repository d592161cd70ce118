"""Architecture plots: event reading, the scalars they draw, and valid PNGs with the expected
panels from a tiny growing run and a tiny MorphNet run through the launchers."""

import json
import os

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures.processes import run_module
from tests.fixtures.runs import tiny_basic3resnet
from tfgrow.masks import Temperature
from tfgrow.plots import growing, run
from tfgrow.plots.events import read_scalars
from tfgrow.plots.scalars import architecture_scalars, stage_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def train_tiny(model_dir, experiment, *bindings):
    """A tiny launcher run of an experiment (configs/tiny.gin); fails the test if it fails."""
    arguments = [f"--gin_file=configs/experiments/{experiment}", "--gin_file=configs/tiny.gin"]
    arguments += [f"--gin_bindings={b}" for b in bindings]
    result = run_module("launchers.train", *arguments, f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]


def assert_valid_png(path, min_pixels=(200, 300)):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_SIGNATURE
    assert 5_000 < len(data) < 2_000_000  # a drawn figure, not an empty canvas
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= min_pixels[0] and image.shape[1] >= min_pixels[1]
    assert image[..., :3].std() > 0.01  # something is drawn on the white background


def test_read_scalars_keeps_the_last_value_of_a_repeated_step_and_skips_images(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step, value in [(0, 1.0), (10, 2.0), (10, 3.0), (20, 4.0)]:  # 10 repeated: a resume
            tf.summary.scalar("budget/fraction", value, step=step)
        tf.summary.image("plots/x", tf.zeros([1, 4, 4, 3]), step=10)
    writer.flush()
    scalars = read_scalars(str(tmp_path))
    assert list(scalars) == ["budget/fraction"]
    steps, values = scalars["budget/fraction"]
    np.testing.assert_array_equal(steps, [0, 10, 20])
    np.testing.assert_allclose(values, [1.0, 3.0, 4.0])
    assert read_scalars(str(tmp_path / "missing")) == {}
    # A running run's last record may be half written: the complete ones are read.
    (event_file,) = tmp_path.glob("events.out.tfevents.*")
    truncated = tmp_path / "running"
    truncated.mkdir()
    (truncated / event_file.name).write_bytes(event_file.read_bytes()[:-20])
    steps, values = read_scalars(str(truncated))["budget/fraction"]
    np.testing.assert_array_equal(steps, [0, 10, 20])


def test_architecture_scalars_count_blocks_per_stage_and_channels_of_off_blocks_as_zero():
    network = tiny_basic3resnet(max_blocks_per_stage=3)  # stage widths 4, 8, 16
    groups = network.group_variables()
    # stage1: block2 on with 3 of 4 inner channels, block3 off with all 4 inner channels on.
    groups["stage1_block2_add_gate"].logits.assign([2.0])
    groups["stage1_block2_1_conv"].logits.assign([1.0, 1.0, 1.0, -1.0])
    groups["stage1_block3_1_conv"].logits.assign([1.0, 1.0, 1.0, 1.0])
    groups["stem_conv"].logits.assign([1.0, 1.0, -1.0, -1.0])  # the stage-1 stream
    groups["stage1_block1_1_conv"].counters.assign([2.0, 0.0, 0.0, 0.0])
    temperature = Temperature(1.0, 16.0, "structure", 4.0)  # gamma = 2
    scalars = architecture_scalars(network, temperature, epoch=1.0, budget_target=0.3)
    assert scalars["stage_blocks/stage1"] == 2.0  # block1 (ungated) + block2
    assert scalars["stage_blocks/stage2"] == 1.0
    assert scalars["active_fraction/stage1_block3_1_conv"] == 1.0  # its own width, block off or not
    # stage1 groups: the stream (named after the stem conv) 2/4, block1 1/4 (seed), block2 3/4,
    # block3 counted 0 of 4.
    assert scalars["stage_fraction/stage1"] == pytest.approx((2 + 1 + 3 + 0) / 16)
    assert "stage_fraction/network" not in scalars
    assert scalars["temperature/stage1_block1_1_conv"] == pytest.approx((4.0 + 1 + 1 + 1) / 4)
    assert scalars["temperature/stage1_block2_add_gate"] == pytest.approx(1.0)
    assert scalars["budget/target"] == 0.3
    assert stage_of("stage2_block3_add_gate") == "stage2" and stage_of("conv3") == "network"
    assert stage_of("stem_conv") == "stage1" and stage_of("stemless") == "network"


def test_growing_figures_have_their_panels_and_are_valid_pngs(tmp_path):
    steps = np.arange(0, 50, 10)
    ramp = np.linspace(0.1, 0.9, len(steps))
    scalars = {"budget/fraction": (steps, ramp), "budget/lambda_channel": (steps, ramp - 0.3)}
    for name in ("stage1", "stage1_block1", "stage2", "stage2_block2"):
        scalars[f"active_fraction/{name}"] = (steps, ramp)
        scalars[f"temperature/{name}"] = (steps, 1 + 10 * ramp)
    scalars["stage_fraction/stage1"] = (steps, ramp)
    figures = growing.draw_growing_figures(scalars)
    # No blocks/ tags: a channel-only run has no blocks figure.
    assert {name: titles for name, (_, titles) in figures.items()} == {
        "channels": ["Active channel ratio per group", "Active channel ratio per stage"],
        "temperature": [
            "Mean temperature per group over training",
            "Mean temperature per group, last",
        ],
        "budget": ["Budget fraction", "Penalty weights lambda"],
    }
    for name, (figure, titles) in figures.items():
        assert [axis.get_title() for axis in figure.axes][: len(titles)] == titles
        path = tmp_path / f"{name}.png"
        path.write_bytes(run.png_bytes(figure))
        assert_valid_png(path)


@pytest.mark.slow
def test_tiny_growing_run_writes_its_plots_and_the_plot_launcher_redraws_them(tmp_path):
    model_dir = tmp_path / "grow"
    train_tiny(model_dir, "fashion_mnist_basic3resnet_grow.gin", "MAX_BLOCKS_PER_STAGE=2")
    expected = {
        "channels": list(growing.TITLES["channels"]),
        "blocks": list(growing.TITLES["blocks"]),
        "temperature": list(growing.TITLES["temperature"]),
        "budget": list(growing.TITLES["budget"]),
    }
    for name in expected:
        assert_valid_png(model_dir / "plots" / f"{name}.png")
    figures = run.draw_run(str(model_dir))
    assert {name: titles for name, (_, titles) in figures.items()} == expected
    # What the plots draw is the run's architecture: the last logged stage blocks and group
    # fractions agree with summary.json.
    summary = json.loads((model_dir / "summary.json").read_text())
    scalars = read_scalars(str(model_dir / "train"))
    for stage in ("stage1", "stage2", "stage3"):
        on = sum(v for k, v in summary["blocks"].items() if k.startswith(stage + "_"))
        assert scalars[f"stage_blocks/{stage}"][1][-1] == on
    # Every group of Basic3ResNet is as wide as its stage (the stem's is stage 1's stream).
    for group, width in summary["architecture"].items():
        size = {"stage2": 32, "stage3": 64}.get(group[:6], 16)
        assert scalars[f"active_fraction/{group}"][1][-1] == width / size
    # TensorBoard images of the figures, once per epoch.
    images = set()
    for directory, _, names in tf.io.gfile.walk(str(model_dir / "train")):
        for name in names:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
                images |= {v.tag for v in event.summary.value if v.tag.startswith("plots/")}
    assert images == {f"plots/{name}" for name in expected}
    out_dir = tmp_path / "redrawn"
    result = run_module("launchers.plot", f"--model_dir={model_dir}", f"--out_dir={out_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out_dir)) == sorted(f"{name}.png" for name in expected)
    for name in expected:
        assert_valid_png(out_dir / f"{name}.png")


@pytest.mark.slow
def test_tiny_morphnet_run_plots_learned_expanded_and_uniform_widths(tmp_path):
    model_dir = tmp_path / "morphnet"
    train_tiny(model_dir, "fashion_mnist_resnet20_morphnet_flops.gin")
    summary = json.loads((model_dir / "summary.json").read_text())
    morphnet = summary["morphnet"]
    # The uniform baseline at the seed's FLOPs: every layer scaled by the same multiplier.
    for layer, width in morphnet["uniform_widths"].items():
        seed = morphnet["seed_widths"][layer]
        assert width == min(seed, int(np.ceil(morphnet["uniform_multiplier"] * seed))) or (
            width == seed  # fixed groups (e.g. the logits) keep their width
        )
    result = run_module("launchers.plot", f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_valid_png(model_dir / "plots" / "morphnet_widths.png")
    figures = run.draw_run(str(model_dir))
    figure, titles = figures["morphnet_widths"]
    assert titles == [f"Iteration {i}: widths per layer" for i in range(morphnet["num_iterations"])]
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels[0] == "seed" and labels[1] == "learned"
    assert labels[2].startswith("expanded (x") and labels[3].startswith("uniform (x")


def test_plot_launcher_says_what_is_missing_without_a_traceback(tmp_path):
    result = run_module("launchers.plot", f"--model_dir={tmp_path}")
    assert result.returncode == 1
    assert "Nothing to plot" in result.stderr and "Traceback" not in result.stderr
