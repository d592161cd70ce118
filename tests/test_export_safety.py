"""Export never destroys what it did not write: it replaces only a previous tfgrow export and
refuses the run's own directory, a directory containing it, a foreign non-empty directory and a
file, leaving each byte for byte as it was."""

import json
import os
import re

import pytest

from tests.fixtures.processes import run_module
from tests.fixtures.runs import fake_morphnet_run
from tfgrow import export, run_export


def _snapshot(path):
    """Every entry under `path` (or the file itself) with its bytes."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {".": f.read()}
    tree = {}
    for root, directories, files in os.walk(path):
        for name in directories:
            tree[os.path.relpath(os.path.join(root, name), path)] = "dir"
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                tree[os.path.relpath(os.path.join(root, name), path)] = f.read()
    return tree


def _targets(tmp_path):
    """(model_dir, {case: export_dir}) for every target an export must refuse."""
    model_dir = tmp_path / "runs" / "run"
    fake_morphnet_run(str(model_dir))
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8 not mine to delete")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("a file the user keeps")
    return model_dir, {
        "model_dir": model_dir,
        "parent_of_model_dir": tmp_path / "runs",
        "foreign_directory": foreign,
        "file": a_file,
    }


REFUSALS = {
    "model_dir": "is the run's model directory",
    "parent_of_model_dir": "contains the run's model directory",
    "foreign_directory": "is a non-empty directory (holding holiday.jpg) that is not a tfgrow",
    "file": "it is a file",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_export_refuses_what_it_did_not_write_and_leaves_it_byte_identical(case, tmp_path):
    model_dir, targets = _targets(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(export.ExportError, match=re.escape(REFUSALS[case])):
        run_export.export_run(str(model_dir), str(targets[case]))
    assert _snapshot(tmp_path) == before  # nothing deleted, nothing written, no temporary left


@pytest.mark.parametrize("case", ["model_dir", "file"])
def test_export_launcher_refuses_with_one_message_and_exit_status_1(case, tmp_path):
    model_dir, targets = _targets(tmp_path)
    before = _snapshot(tmp_path)
    result = run_module(
        "launchers.export", f"--model_dir={model_dir}", f"--export_dir={targets[case]}"
    )
    assert result.returncode == 1
    assert f"ExportError: Refusing to export to {targets[case]}" in result.stderr
    assert REFUSALS[case] in result.stderr and "Traceback" not in result.stderr
    assert _snapshot(tmp_path) == before


def test_export_replaces_its_own_previous_export_and_an_empty_directory(tmp_path):
    model_dir = tmp_path / "run"
    fake_morphnet_run(str(model_dir))
    target = tmp_path / "export"
    target.mkdir()  # empty: nothing to lose
    run_export.export_run(str(model_dir), str(target), "tflite")
    with open(target / "export_info.json") as f:
        first = json.load(f)
    assert first[export.EXPORT_MARKER] == export.EXPORT_FORMAT and first["format"] == "tflite"
    assert sorted(os.listdir(target)) == ["export_info.json", "model.tflite"]

    run_export.export_run(str(model_dir), str(target), "saved_model")
    with open(target / "export_info.json") as f:
        assert json.load(f)["format"] == "saved_model"
    assert "model.tflite" not in os.listdir(target) and "saved_model.pb" in os.listdir(target)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".export")]


def test_export_refuses_to_replace_an_export_holding_files_it_did_not_write(tmp_path):
    model_dir = tmp_path / "run"
    fake_morphnet_run(str(model_dir))
    target = tmp_path / "export"
    run_export.export_run(str(model_dir), str(target), "tflite")
    (target / "README.md").write_text("the user's notes about this model")
    before = _snapshot(target)
    with pytest.raises(export.ExportError, match=r"it also holds \['README.md'\]"):
        run_export.export_run(str(model_dir), str(target), "tflite")
    assert _snapshot(target) == before
