r"""MorphNet vs the uniform width multiplier at the same FLOPs: ResNet-20 on Fashion-MNIST.

Runs `fashion_mnist_resnet20_morphnet_flops.gin` (one iteration: shrink, expand to 50% of the
seed's FLOPs, train from scratch) and `fashion_mnist_resnet20_width_multiplier.gin` (the seed at
the largest uniform multiplier meeting the same FLOPs, trained from scratch) through the launcher,
one after the other, with the same training epochs and training slice, then prints a table and
checks the issue's target: MorphNet's test accuracy >= the baseline's.

Usage:
  python -m benchmarks.morphnet [--epochs=6] [--shrink_epochs=3] [--max_train_examples=30000] \
    [--json=results.json] [--root=runs/bench_morphnet]
  python -m benchmarks.morphnet --extra_gin=configs/tiny.gin   # a one-minute smoke run
"""

import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("epochs", 6, "Training epochs of both final networks (from scratch).")
flags.DEFINE_integer("shrink_epochs", 3, "Epochs of MorphNet's shrink phase.")
flags.DEFINE_integer("max_train_examples", 30000, "Training slice of both runs (0: all 60,000).")
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
flags.DEFINE_string("root", "runs/bench_morphnet", "Parent directory of both model dirs.")
flags.DEFINE_multi_string("extra_gin", [], "Extra gin files for both runs (e.g. tiny.gin).")
flags.DEFINE_bool("reuse", False, "Reuse runs that have a summary.json.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    "morphnet": "configs/experiments/fashion_mnist_resnet20_morphnet_flops.gin",
    "width_multiplier": "configs/experiments/fashion_mnist_resnet20_width_multiplier.gin",
}


def bindings():
    result = [
        f"tfgrow.train.epochs={FLAGS.epochs}",
        f"tfgrow.MorphNet.shrink_epochs_ratio={FLAGS.shrink_epochs / FLAGS.epochs}",
        "TARGET_FRACTION=0.5",
    ]
    if FLAGS.max_train_examples:
        result.append(f"tfgrow.train.max_train_examples={FLAGS.max_train_examples}")
    return result


def run(name, config):
    model_dir = os.path.join(FLAGS.root, name)
    summary_path = os.path.join(model_dir, "summary.json")
    if not (FLAGS.reuse and os.path.exists(summary_path)):
        command = [sys.executable, "-m", "launchers.train", f"--gin_file={config}"]
        command += [f"--gin_file={f}" for f in FLAGS.extra_gin]
        if not FLAGS.extra_gin:
            command += [f"--gin_bindings={b}" for b in bindings()]
        command.append(f"--model_dir={model_dir}")
        print("running:", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=True)
    with open(summary_path) as f:
        return json.load(f)


def compare(morphnet, baseline):
    iteration = morphnet["morphnet"]["iterations"][0]
    figures = {
        "epochs": morphnet["epochs"],
        "shrink_epochs": iteration["shrink_epochs"],
        "max_train_examples": None if FLAGS.extra_gin else FLAGS.max_train_examples or None,
        "morphnet_eval_accuracy": morphnet["eval_accuracy"],
        "baseline_eval_accuracy": baseline["eval_accuracy"],
        "accuracy_gain_points": 100.0 * (morphnet["eval_accuracy"] - baseline["eval_accuracy"]),
        "flops_full": morphnet["flops_full"],
        "morphnet_flops": morphnet["flops"],
        "baseline_flops": baseline["flops"],
        "morphnet_params": morphnet["params"],
        "baseline_params": baseline["params"],
        "params_full": morphnet["params_full"],
        "learned_flops_fraction": iteration["learned_cost"] / morphnet["flops_full"],
        "morphnet_multiplier": morphnet["width_multiplier"],
        "baseline_multiplier": baseline["width_multiplier"],
        "morphnet_architecture": morphnet["architecture"],
        "baseline_architecture": baseline["architecture"],
        "morphnet_train_flops": morphnet["train_flops"],
        "baseline_train_flops": baseline["train_flops"],
        "morphnet_wall_time_s": morphnet["wall_time_s"],
        "baseline_wall_time_s": baseline["wall_time_s"],
    }
    figures["targets"] = {
        "morphnet_accuracy_at_least_baseline": figures["accuracy_gain_points"] >= 0.0,
        "both_at_most_50_percent_flops": max(figures["morphnet_flops"], figures["baseline_flops"])
        <= 0.5 * figures["flops_full"],
    }
    return figures


def stage_widths(architecture):
    """'stream / inner' widths per stage, e.g. '13 / 6-6-6'."""
    parts = []
    for stage in (1, 2, 3):
        stream = architecture[f"stage{stage}_block1_2_conv"]
        inner = "-".join(str(architecture[f"stage{stage}_block{b}_1_conv"]) for b in (1, 2, 3))
        parts.append(f"{stream}/{inner}")
    return "  ".join(parts)


def print_table(figures):
    full, params_full = figures["flops_full"], figures["params_full"]
    rows = [
        ("", "MorphNet", "width multiplier"),
        (
            "eval accuracy (test)",
            f"{figures['morphnet_eval_accuracy']:.4f}",
            f"{figures['baseline_eval_accuracy']:.4f}",
        ),
        (
            "FLOPs/example (of seed)",
            f"{figures['morphnet_flops'] / 1e6:.1f}M ({figures['morphnet_flops'] / full:.1%})",
            f"{figures['baseline_flops'] / 1e6:.1f}M ({figures['baseline_flops'] / full:.1%})",
        ),
        (
            "params (of seed)",
            f"{figures['morphnet_params']:,} ({figures['morphnet_params'] / params_full:.1%})",
            f"{figures['baseline_params']:,} ({figures['baseline_params'] / params_full:.1%})",
        ),
        (
            "multiplier",
            f"x{figures['morphnet_multiplier']:.4f} of learned",
            f"x{figures['baseline_multiplier']:.4f} of seed",
        ),
        (
            "stream/inner widths per stage",
            stage_widths(figures["morphnet_architecture"]),
            stage_widths(figures["baseline_architecture"]),
        ),
        (
            "training FLOPs",
            f"{figures['morphnet_train_flops']:.3g}",
            f"{figures['baseline_train_flops']:.3g}",
        ),
        (
            "wall time",
            f"{figures['morphnet_wall_time_s']:.0f} s",
            f"{figures['baseline_wall_time_s']:.0f} s",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(
        f"\nResNet-20 on Fashion-MNIST at 50% of the seed's FLOPs ({full / 1e6:.1f}M): "
        f"{figures['epochs']} training epochs each, MorphNet shrink {figures['shrink_epochs']} "
        f"epochs (learned network: {figures['learned_flops_fraction']:.1%} FLOPs), training "
        f"slice {figures['max_train_examples'] or 'all'}"
    )
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))
    print(f"accuracy gain: {figures['accuracy_gain_points']:+.2f} points")
    verdicts = (f"{k}={'yes' if v else 'NO'}" for k, v in figures["targets"].items())
    print("targets:", ", ".join(verdicts))


def main(argv):
    del argv
    summaries = {name: run(name, config) for name, config in RUNS.items()}
    figures = compare(summaries["morphnet"], summaries["width_multiplier"])
    print_table(figures)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    app.run(main)
