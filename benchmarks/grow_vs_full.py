r"""Grown vs full ResNet-20 on Fashion-MNIST, side by side: accuracy, size, FLOPs, wall time.

Runs the main job (`fashion_mnist_resnet20_grow.gin`) and its full-width reference
(`fashion_mnist_resnet20_full.gin`), both on the graph engine, one after the other through the
launcher, with the same epochs, then prints a table of ratios and checks them against the
foundation issue's targets:

  grown accuracy >= full accuracy - 1 point;  params <= 40% of full;  train_cost_savings >= 2;
  grown wall time <= 0.6 x full wall time;  grown run <= 20 minutes;

and against issue 11's, for the main job on the graph engine:

  accuracy within 0.5 points of full;  params <= 32% of full;  train_cost_savings >= 2.5.

Usage:
  python -m benchmarks.grow_vs_full [--epochs=N] [--json=results.json] [--root=runs/bench]
  python -m benchmarks.grow_vs_full --extra_gin=configs/tiny.gin   # a one-minute smoke run
  python -m benchmarks.grow_vs_full --latency   # + the latency-budget run (issue 14)

With --latency, `fashion_mnist_resnet20_grow_latency.gin` (a budget of 50% of the predicted
step time) runs after them and is checked against issue 14's targets: wall time <= 0.6 x the
full run's, accuracy within 0.7 points of it.
"""

import json
import os
import subprocess
import sys

from absl import app, flags

flags.DEFINE_integer("epochs", None, "Override the epochs of both runs (default: the configs').")
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
flags.DEFINE_string("root", "runs/bench_grow_vs_full", "Parent directory of both model dirs.")
flags.DEFINE_multi_string("extra_gin", [], "Extra gin files for both runs (e.g. tiny.gin).")
flags.DEFINE_bool("reuse", False, "Reuse runs that have a summary.json.")
flags.DEFINE_bool("latency", False, "Also run the latency-budget config, back to back (issue 14).")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = {
    "grow": "configs/experiments/fashion_mnist_resnet20_grow.gin",
    "full": "configs/experiments/fashion_mnist_resnet20_full.gin",
    # Issue 14: the same network grown to 50% of the full network's predicted step time.
    "grow_latency": "configs/experiments/fashion_mnist_resnet20_grow_latency.gin",
}


def run(name, config):
    model_dir = os.path.join(FLAGS.root, name)
    summary_path = os.path.join(model_dir, "summary.json")
    if not (FLAGS.reuse and os.path.exists(summary_path)):
        command = [sys.executable, "-m", "launchers.train", f"--gin_file={config}"]
        command += [f"--gin_file={f}" for f in FLAGS.extra_gin]
        if FLAGS.epochs:
            command.append(f"--gin_bindings=tfgrow.train.epochs={FLAGS.epochs}")
        command.append(f"--model_dir={model_dir}")
        print("running:", " ".join(command), flush=True)
        subprocess.run(command, cwd=REPO, check=True)
    with open(summary_path) as f:
        return json.load(f)


def compare(grow, full):
    figures = {
        "epochs": grow["epochs"],
        "grow_eval_accuracy": grow["eval_accuracy"],
        "full_eval_accuracy": full["eval_accuracy"],
        "accuracy_gap_points": 100.0 * (full["eval_accuracy"] - grow["eval_accuracy"]),
        "params_fraction": grow["params"] / grow["params_full"],
        "flops_fraction": grow["flops"] / grow["flops_full"],
        "train_cost_savings": grow["train_cost_savings"],
        "grow_wall_time_s": grow["wall_time_s"],
        "full_wall_time_s": full["wall_time_s"],
        "wall_time_ratio": grow["wall_time_s"] / full["wall_time_s"],
        # Measured at the end of the grow run, in its process: one training step of H(s)
        # against one of the full network, both as stock Keras models (tfgrow.train.step_timing).
        "step_time_ratio": grow.get("step_time_ratio"),
    }
    figures["targets"] = {
        "accuracy_within_1_point": figures["accuracy_gap_points"] <= 1.0,
        "params_at_most_40_percent": figures["params_fraction"] <= 0.40,
        "train_cost_savings_at_least_2": figures["train_cost_savings"] >= 2.0,
        "wall_time_ratio_at_most_0_6": figures["wall_time_ratio"] <= 0.6,
        "grow_run_at_most_20_minutes": figures["grow_wall_time_s"] <= 1200.0,
    }
    return figures


def issue_11_targets(figures):
    """Issue 11's targets for the main job, from `compare`'s figures against the same full run."""
    return {
        "accuracy_within_0_5_point": figures["accuracy_gap_points"] <= 0.5,
        "params_at_most_32_percent": figures["params_fraction"] <= 0.32,
        "train_cost_savings_at_least_2_5": figures["train_cost_savings"] >= 2.5,
    }


def compare_latency(latency, full):
    """Issue 14's targets for the latency-budget run, against the same full run."""
    figures = compare(latency, full)
    figures["latency_predicted_fraction"] = latency.get("latency_predicted_s", 0.0) / max(
        latency.get("latency_predicted_full_s", 0.0), 1e-12
    )
    figures["targets"] = {
        "wall_time_ratio_at_most_0_6": figures["wall_time_ratio"] <= 0.6,
        "accuracy_within_0_7_point": figures["accuracy_gap_points"] <= 0.7,
    }
    return figures


def print_table(figures):
    rows = [
        (
            "eval accuracy (grow / full)",
            f"{figures['grow_eval_accuracy']:.4f} / {figures['full_eval_accuracy']:.4f}",
        ),
        ("accuracy gap (points)", f"{figures['accuracy_gap_points']:.2f}"),
        ("params: grown / full", f"{figures['params_fraction']:.3f}"),
        ("FLOPs: grown / full", f"{figures['flops_fraction']:.3f}"),
        (
            "step time: grown / full (measured)",
            "n/a" if figures["step_time_ratio"] is None else f"{figures['step_time_ratio']:.3f}",
        ),
        ("train_cost_savings (x)", f"{figures['train_cost_savings']:.2f}"),
        (
            "wall time: grow / full",
            f"{figures['wall_time_ratio']:.3f}  ({figures['grow_wall_time_s']:.0f}s / "
            f"{figures['full_wall_time_s']:.0f}s)",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nResNet-20 on Fashion-MNIST, {figures['epochs']} epochs")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print_targets(figures["targets"])


def print_targets(targets):
    print("targets:", ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in targets.items()))


def main(argv):
    del argv
    names = ["grow", "full"] + (["grow_latency"] if FLAGS.latency else [])
    summaries = {name: run(name, RUNS[name]) for name in names}
    figures = compare(summaries["grow"], summaries["full"])
    figures["issue_11_targets"] = issue_11_targets(figures)
    print_table(figures)
    print("issue 11:", end=" ")
    print_targets(figures["issue_11_targets"])
    if FLAGS.latency:
        latency = compare_latency(summaries["grow_latency"], summaries["full"])
        print("\nThe latency budget (fashion_mnist_resnet20_grow_latency.gin), same full run:")
        print_table(latency)
        print(f"  predicted step: H(s) / full  {latency['latency_predicted_fraction']:.3f}")
        figures = {"grow": figures, "latency": latency}
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    app.run(main)
