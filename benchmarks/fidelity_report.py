"""The fidelity benchmark's pure part: aggregate run summaries, check the paper's claims, print.

Kept free of subprocesses and TensorFlow so `tests/benchmarks/test_fidelity.py` checks it fast.
A *record* is one finished run: {"method", "budget", "seed", "summary"} with the run's
summary.json as "summary" (eval_accuracy, params, params_full, flops, flops_full,
train_cost_savings, wall_time_s).
"""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# How close the grown architecture must land to its budget for claim (a): 5% of the target.
BUDGET_TOLERANCE = 0.05
METRICS = ("eval_accuracy", "params", "flops", "train_cost_savings", "wall_time_s")
CLAIMS = {
    "a": "the final architecture lands within 5% of the budget",
    "b": "structure-wise temperatures beat the global scheduler at equal sparsity",
    "c": "learned sampling beats random sampling",
    "d": "growing beats direct design and uniform pruning",
    # The MorphNet configs target 50% of the seed's FLOPs (TARGET_FRACTION), both methods alike.
    "e": "MorphNet beats the uniform width multiplier at the same FLOPs target",
}


def aggregate(records):
    """Mean and standard deviation over seeds of every (method, budget) row.

    Args:
        records: list of run records (module docstring).

    Returns:
        list of rows sorted by method then budget: {"method", "budget", "num_seeds", and for each
        metric m of METRICS "m_mean", "m_std"; "params_fraction_mean", "flops_fraction_mean"}.
        The std is the population std over seeds (0 for one seed).
    """
    groups = {}
    for record in records:
        groups.setdefault((record["method"], record["budget"]), []).append(record["summary"])
    rows = []
    for (method, budget), summaries in sorted(groups.items(), key=_row_order):
        row = {"method": method, "budget": budget, "num_seeds": len(summaries)}
        for metric in METRICS:
            values = np.array([float(s[metric]) for s in summaries])
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std())
        for kind in ("params", "flops"):
            fractions = [s[kind] / s[f"{kind}_full"] for s in summaries]
            row[f"{kind}_fraction_mean"] = float(np.mean(fractions))
        rows.append(row)
    return rows


def _row_order(item):
    (method, budget), _ = item
    return (method, -1.0 if budget is None else budget)


def find_row(rows, method, budget="any"):
    """The row of `method` at `budget` ("any": its only or first row), or None."""
    for row in rows:
        if row["method"] == method and (budget == "any" or row["budget"] == budget):
            return row
    return None


def budget_claim(records, methods=("grow",)):
    """Claim (a): every run of `methods` ends within BUDGET_TOLERANCE of its target, relatively.

    Returns:
        dict {"status": "reproduced" | "not reproduced" | "not run", "evidence": str,
        "runs": [(method, budget, seed, fraction, relative gap)]}.
    """
    runs = []
    for record in records:
        if record["method"] in methods and record["budget"] is not None:
            summary = record["summary"]
            fraction = summary["params"] / summary["params_full"]
            gap = (fraction - record["budget"]) / record["budget"]
            runs.append((record["method"], record["budget"], record["seed"], fraction, gap))
    if not runs:
        return {"status": "not run", "evidence": f"no finished {'/'.join(methods)} run", "runs": []}
    worst = max(runs, key=lambda run: abs(run[4]))
    within = [abs(run[4]) <= BUDGET_TOLERANCE + 1e-9 for run in runs]  # 1e-9: float error
    ok = all(within)
    evidence = (
        f"{sum(within)}/{len(runs)} runs within "
        f"{BUDGET_TOLERANCE:.0%} of their target; worst: {worst[0]} target {worst[1]:.2f}, seed "
        f"{worst[2]}: params fraction {worst[3]:.3f} ({worst[4]:+.1%})"
    )
    return {"status": "reproduced" if ok else "not reproduced", "evidence": evidence, "runs": runs}


def accuracy_claim(rows, winner, losers, budgets):
    """Claims (b)-(e): `winner`'s mean accuracy is above each of `losers`' at every budget.

    A difference smaller than the larger of the two standard deviations is called "within
    noise" in the evidence, but still counts: the claim is about the mean.

    Args:
        rows: `aggregate` output.
        winner: the method the paper says wins.
        losers: the methods it beats.
        budgets: the budgets to compare at (None: MorphNet's seed-FLOPs row).

    Returns:
        dict {"status", "evidence", "comparisons": [(loser, budget, winner acc, loser acc)]}.
    """
    comparisons, notes = [], []
    for budget in budgets:
        ours = find_row(rows, winner, budget)
        for loser in losers:
            theirs = find_row(rows, loser, budget)
            if ours is None or theirs is None:
                continue
            a, b = ours["eval_accuracy_mean"], theirs["eval_accuracy_mean"]
            noise = max(ours["eval_accuracy_std"], theirs["eval_accuracy_std"])
            comparisons.append((loser, budget, a, b))
            where = "" if budget is None else f" at {budget:.0%}"
            verdict = ">" if a > b else "<=" if a < b else "="
            noisy = " (within noise)" if abs(a - b) <= noise and noise > 0 else ""
            notes.append(
                f"{winner} {_percent(a)} ({ours['params_fraction_mean']:.1%} params) {verdict} "
                f"{loser} {_percent(b)} ({theirs['params_fraction_mean']:.1%} params){where}, "
                f"n={ours['num_seeds']}/{theirs['num_seeds']}{noisy}"
            )
    if not comparisons:
        missing = ", ".join(m for m in (winner, *losers) if find_row(rows, m) is None)
        return {
            "status": "not run",
            "evidence": f"missing runs: {missing or 'no common budget'}",
            "comparisons": [],
        }
    ok = all(a > b for _, _, a, b in comparisons)
    return {
        "status": "reproduced" if ok else "not reproduced",
        "evidence": "; ".join(notes),
        "comparisons": comparisons,
    }


def check_claims(records, rows, main_budget, sweep_budgets):
    """The paper's claims (a)-(e) (issue 12) against this run; (a) also for Basic3ResNet.

    Returns:
        dict claim id -> {"claim", "status", "evidence", ...}; "a_layers" is claim (a) for
        joint layer and channel growing.
    """
    claims = {
        "a": budget_claim(records, ("grow",)),
        "a_layers": budget_claim(records, ("grow_basic3resnet",)),
        "b": accuracy_claim(rows, "grow", ("global_temperature",), [main_budget]),
        "c": accuracy_claim(rows, "grow", ("random", "random_matched"), [main_budget]),
        "d": accuracy_claim(
            rows, "grow", ("direct_design", "uniform"), sorted({main_budget, *sweep_budgets})
        ),
        "e": accuracy_claim(rows, "morphnet", ("width_multiplier",), [None]),
    }
    for key, result in claims.items():
        result["claim"] = CLAIMS[key[0]] + (
            " (Basic3ResNet, layers + channels)" if "_" in key else ""
        )
    return claims


def format_table(rows):
    """The benchmark's table as Markdown: mean ± std over seeds."""
    header = (
        "| method | budget | seeds | test accuracy | params | FLOPs | train-cost savings | "
        "wall time |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for row in rows:
        budget = "-" if row["budget"] is None else f"{row['budget']:.0%}"
        lines.append(
            f"| {row['method']} | {budget} | {row['num_seeds']} | "
            f"{_percent(row['eval_accuracy_mean'])} ± {100 * row['eval_accuracy_std']:.2f} | "
            f"{row['params_mean']:,.0f} ({row['params_fraction_mean']:.1%}) | "
            f"{row['flops_mean'] / 1e6:.1f}M ({row['flops_fraction_mean']:.1%}) | "
            f"{row['train_cost_savings_mean']:.2f}x ± {row['train_cost_savings_std']:.2f} | "
            f"{row['wall_time_s_mean']:.0f} s ± {row['wall_time_s_std']:.0f} |"
        )
    return "\n".join(lines)


def format_claims(claims):
    lines = []
    for key, result in claims.items():
        lines.append(f"({key}) {result['claim']}: {result['status'].upper()}. {result['evidence']}")
    return "\n".join(lines)


def _percent(value):
    return "nan" if math.isnan(value) else f"{100 * value:.2f}%"


def draw_tradeoff(rows, kind):
    """Test accuracy against params or FLOPs (fraction of the full network), every method on one
    figure; error bars are the std over seeds.

    Args:
        rows: `aggregate` output.
        kind: "params" or "flops".

    Returns:
        (figure, [title]).
    """
    title = f"Test accuracy vs {'params' if kind == 'params' else 'FLOPs'}"
    figure, axis = plt.subplots(figsize=(7, 5))
    palette = plt.get_cmap("tab20")  # 20 colours: no two of the 12 default methods share one
    methods = sorted({row["method"] for row in rows})
    for index, method in enumerate(methods):
        points = sorted(
            (r[f"{kind}_fraction_mean"], r["eval_accuracy_mean"], r["eval_accuracy_std"])
            for r in rows
            if r["method"] == method
        )
        x, y, error = (np.array(values) for values in zip(*points))
        axis.errorbar(
            x,
            100 * y,
            yerr=100 * error,
            marker="osD^vPX"[index % 7],
            capsize=3,
            label=method,
            color=palette(index % 20),
            linestyle="-" if len(points) > 1 else "none",
        )
    _clip_far_below(axis, rows, kind)
    axis.set_title(title)
    axis.set_xlabel(f"{'params' if kind == 'params' else 'FLOPs'} (fraction of the full network)")
    axis.set_ylabel("test accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure, [title]


# A row more than this many accuracy points below the best is drawn at the bottom edge with its
# value written beside it, so that one failed method does not flatten every other curve.
FAR_BELOW_POINTS = 20.0


def _clip_far_below(axis, rows, kind):
    accuracies = [100 * row["eval_accuracy_mean"] for row in rows]
    best = max(accuracies)
    near = [a for a in accuracies if a >= best - FAR_BELOW_POINTS]
    bottom = min(near) - 3.0
    if bottom <= min(accuracies):
        return
    axis.set_ylim(bottom, best + 1.5)
    below = [(row, a) for row, a in zip(rows, accuracies) if a < bottom]
    for index, (row, accuracy) in enumerate(below):
        x = row[f"{kind}_fraction_mean"]
        axis.annotate(
            f"{row['method']}: {accuracy:.1f}% (off scale)",
            xy=(x, bottom),
            xytext=(x, bottom + 0.8 + 0.8 * index),  # stacked, so that close labels stay legible
            fontsize=7,
            ha="left",
            arrowprops={"arrowstyle": "->"},
        )
