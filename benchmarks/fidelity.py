r"""Growing against every baseline, several seeds and a budget sweep: does tfgrow reproduce the
paper's trends? (issue 12; the claims (a)-(e) are in `benchmarks/fidelity_report.py`.)

Runs each method through the launcher (one subprocess and one model dir per run under --out,
skipped when its summary.json exists, so an interrupted benchmark resumes), then prints one table
(mean ± std over seeds of test accuracy, params, FLOPs, training-cost savings, wall time), states
for each claim whether this run reproduces it, writes --json and the PNGs
OUT/accuracy_vs_params.png and OUT/accuracy_vs_flops.png.

Default: ResNet-20 on Fashion-MNIST, 5 epochs on 20,000 training examples (the full test split),
3 seeds at 30% of the params for every method (the random baseline twice: p = the target as
METHOD.md §1.9 defines it, and p matched to the budget's cost), a sweep over 10/20/30/50% for
grow, direct design and uniform pruning, MorphNet vs width multiplier at the seed's FLOPs, and
Basic3ResNet joint layer + channel growing for claim (a). 43 runs; estimated 1.6-1.9 h on this
2-core CPU (measured ResNet-20 steps: 0.136 s grown, 0.164 s full, 156 steps per epoch of 20,000
examples; about 36 full-network runs' worth of steps, plus start-up and evaluation).

Usage:
  python -m benchmarks.fidelity --out=runs/fidelity --json=runs/fidelity.json
  # smoke run, a few minutes:
  python -m benchmarks.fidelity --gin_file=configs/tiny.gin --epochs=1 --max_train_examples=512 \
    --seeds=1 --budgets=0.3 --out=/tmp/fidelity_smoke
"""

import dataclasses
import json
import os
import subprocess
import sys
import time

from absl import app, flags

from benchmarks import fidelity_report as report

EXPERIMENTS = "configs/experiments"
# method -> (experiment config, whether it takes a params budget). The baselines are launcher
# methods of their own configs (tfgrow.train.method = random | uniform | ...).
METHODS = {
    "grow": ("fashion_mnist_resnet20_grow.gin", True),
    "global_temperature": ("fashion_mnist_resnet20_global_temperature.gin", True),
    "random": ("fashion_mnist_resnet20_random.gin", True),
    # p sized so the expected final architecture costs the budget (p = 0.55 at 30% params).
    "random_matched": ("fashion_mnist_resnet20_random_matched.gin", True),
    "uniform": ("fashion_mnist_resnet20_uniform.gin", True),
    "direct_design": ("fashion_mnist_resnet20_direct_design.gin", True),
    "l1_pruning": ("fashion_mnist_resnet20_l1_pruning.gin", True),
    "magnitude_pruning": ("fashion_mnist_resnet20_magnitude_pruning.gin", True),
    "full": ("fashion_mnist_resnet20_full.gin", False),
    "morphnet": ("fashion_mnist_resnet20_morphnet_flops.gin", False),
    "width_multiplier": ("fashion_mnist_resnet20_width_multiplier.gin", False),
    "grow_basic3resnet": ("fashion_mnist_basic3resnet_grow.gin", True),
}
SWEEP_METHODS = ("grow", "direct_design", "uniform")
BASIC3RESNET_BUDGET = 0.35  # its config's target; one seed, claim (a) only
BUDGET_BINDING = "tfgrow.Budget.target"
# direct_design re-trains the architecture of the grow run with the same budget and seed.
DIRECT_DESIGN_SOURCE_BINDING = "tfgrow.DirectDesign.source_run_dir"


def define_flags():
    """The benchmark's flags, defined only when it runs as a program: importing the module (its
    test, or a process that also imports launchers.train and its --gin_file) defines none."""
    flags.DEFINE_string("out", "runs/fidelity", "Parent directory of every run's model dir.")
    flags.DEFINE_string("json", None, "Also write rows, claims and runs to this JSON file.")
    flags.DEFINE_integer("epochs", 5, "Training epochs of every run.")
    flags.DEFINE_integer("max_train_examples", 20000, "Training examples per epoch (0: all).")
    flags.DEFINE_integer("max_eval_examples", 0, "Test examples (0: the whole test split).")
    flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1 at --main_budget for every method.")
    flags.DEFINE_float("main_budget", 0.3, "The budget (params fraction) of the seed runs.")
    flags.DEFINE_list("budgets", ["0.1", "0.2", "0.3", "0.5"], "Sweep budgets (seed 0).")
    flags.DEFINE_list("methods", list(METHODS), f"Methods to run, of {list(METHODS)}.")
    flags.DEFINE_multi_string("gin_file", [], "Extra gin files for every run (e.g. tiny.gin).")


FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Run:
    """One launcher run of the benchmark."""

    method: str
    budget: float | None
    seed: int

    @property
    def name(self):
        budget = "" if self.budget is None else f"_b{self.budget:.2f}"
        return f"{self.method}{budget}_s{self.seed}"


def plan_runs(methods, num_seeds, main_budget, sweep_budgets):
    """Every run of the benchmark, sources (grow) before the runs that read them.

    Args:
        methods: method names (keys of METHODS).
        num_seeds: seeds 0..num_seeds-1 at `main_budget` (unbudgeted methods: no budget).
        main_budget: the seed runs' params fraction.
        sweep_budgets: extra budgets, seed 0, for SWEEP_METHODS.

    Returns:
        list of `Run`, without duplicates.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown methods {unknown}. Expected some of {list(METHODS)}.")
    runs = []
    for method in sorted(methods, key=lambda m: (m == "direct_design", list(METHODS).index(m))):
        budgeted = METHODS[method][1]
        if method == "grow_basic3resnet":
            runs.append(Run(method, BASIC3RESNET_BUDGET, 0))
            continue
        for seed in range(num_seeds):
            runs.append(Run(method, main_budget if budgeted else None, seed))
        if method in SWEEP_METHODS:
            runs += [Run(method, b, 0) for b in sweep_budgets if b != main_budget]
    return list(dict.fromkeys(runs))


def command_for(run, out, epochs, max_train_examples, max_eval_examples, extra_gin):
    """The launcher command line of one run."""
    config = os.path.join(EXPERIMENTS, METHODS[run.method][0])
    command = [sys.executable, "-m", "launchers.train", f"--gin_file={config}"]
    command += [f"--gin_file={f}" for f in extra_gin]
    bindings = [f"tfgrow.train.epochs={epochs}", f"tfgrow.train.seed={run.seed}"]
    bindings.append(f"tfgrow.train.max_train_examples={max_train_examples or None}")
    bindings.append(f"tfgrow.train.max_eval_examples={max_eval_examples or None}")
    if run.budget is not None:
        bindings.append(f"{BUDGET_BINDING}={run.budget}")
    if run.method == "direct_design":
        source = os.path.join(out, Run("grow", run.budget, run.seed).name)
        bindings.append(f"{DIRECT_DESIGN_SOURCE_BINDING}='{source}'")
    command += [f"--gin_bindings={b}" for b in bindings]
    return command + [f"--model_dir={os.path.join(out, run.name)}"]


def execute(run, command, out):
    """Runs one command unless its summary.json exists; returns (summary or None, error)."""
    summary_path = os.path.join(out, run.name, "summary.json")
    if not os.path.exists(summary_path):
        config = os.path.join(REPO, EXPERIMENTS, METHODS[run.method][0])
        if not os.path.exists(config):
            return None, f"config {os.path.relpath(config, REPO)} not found"
        print(f"[{time.strftime('%H:%M:%S')}] {run.name}: {' '.join(command[1:])}", flush=True)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            return None, f"exit {result.returncode}: " + " | ".join(lines[-3:])
    with open(summary_path) as f:
        return json.load(f), None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sweep = [float(b) for b in FLAGS.budgets]
    runs = plan_runs(FLAGS.methods, FLAGS.seeds, FLAGS.main_budget, sweep)
    out = os.path.abspath(FLAGS.out)
    os.makedirs(out, exist_ok=True)
    records, failures = [], {}
    start = time.time()
    for run in runs:
        command = command_for(
            run,
            out,
            FLAGS.epochs,
            FLAGS.max_train_examples,
            FLAGS.max_eval_examples,
            FLAGS.gin_file,
        )
        summary, error = execute(run, command, out)
        if error:
            failures[run.name] = error
            print(f"  {run.name} FAILED: {error}", flush=True)
            continue
        records.append({**dataclasses.asdict(run), "summary": summary})
    rows = report.aggregate(records)
    claims = report.check_claims(records, rows, FLAGS.main_budget, sweep)
    print(
        f"\nResNet-20 on Fashion-MNIST, {FLAGS.epochs} epochs, {len(records)} runs "
        f"({time.time() - start:.0f} s this invocation)\n"
    )
    print(report.format_table(rows))
    print("\nThe paper's claims:\n" + report.format_claims(claims))
    if failures:
        print("\nNot run or failed:\n" + "\n".join(f"  {k}: {v}" for k, v in failures.items()))
    plots = {}
    for kind in ("params", "flops"):
        figure, titles = report.draw_tradeoff(rows, kind)
        path = os.path.join(out, f"accuracy_vs_{kind}.png")
        figure.savefig(path, dpi=100)
        report.plt.close(figure)
        plots[path] = titles
    print("\nplots: " + ", ".join(plots))
    if FLAGS.json:
        payload = {
            "settings": {
                k: FLAGS[k].value
                for k in (
                    "epochs",
                    "max_train_examples",
                    "max_eval_examples",
                    "seeds",
                    "main_budget",
                    "budgets",
                    "methods",
                    "gin_file",
                )
            },
            "rows": rows,
            "claims": claims,
            "failures": failures,
            "runs": [
                {k: v for k, v in r.items() if k != "summary"}
                | {m: r["summary"][m] for m in report.METRICS + ("params_full", "flops_full")}
                for r in records
            ],
        }
        with open(FLAGS.json, "w") as f:
            json.dump(payload, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
