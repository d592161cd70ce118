"""benchmarks/latency_table.py runs end to end and reports consistent figures."""

import json

from tests.fixtures.processes import run_module


def test_latency_table_benchmark_writes_consistent_figures(tmp_path):
    path = tmp_path / "latency.json"
    result = run_module(
        "benchmarks.latency_table",
        "--architectures=2",
        "--batch_size=4",
        "--rounds=1",
        "--steps=1",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--json={path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(path.read_text())
    assert len(figures["rows"]) == 2
    for row in figures["rows"]:
        assert abs(row["error"] - (row["predicted_ms"] / row["measured_ms"] - 1)) < 1e-9
        assert abs(row["measured_fraction"] - row["measured_ms"] / row["full_measured_ms"]) < 1e-9
        assert 0 < row["predicted_fraction"]
    assert figures["max_abs_error"] == max(abs(row["error"]) for row in figures["rows"])
    assert "fraction of the full step" in result.stdout
