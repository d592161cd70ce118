"""BUILD stays in step with the files: one py_test per test file, one py_binary per launcher,
and every package module in the py_library's srcs."""

import glob
import os
import re

from tests.fixtures.processes import REPO


def _build_text():
    with open(os.path.join(REPO, "BUILD")) as f:
        return f.read()


def _rule_names(kind):
    return set(re.findall(kind + r'\(\s*name = "([^"]+)"', _build_text()))


def _relative(pattern):
    return sorted(
        os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern), recursive=True)
    )


def test_every_test_file_has_a_py_test():
    expected = {os.path.splitext(os.path.basename(p))[0] for p in _relative("tests/**/test_*.py")}
    assert _rule_names("py_test") == expected


def test_every_launcher_has_a_py_binary():
    expected = {
        os.path.splitext(os.path.basename(p))[0]
        for p in _relative("launchers/*.py")
        if not p.endswith("__init__.py")
    }
    assert _rule_names("py_binary") == expected


def test_the_library_lists_every_package_module():
    srcs = set(re.findall(r'"(tfgrow/[^"]+\.py)"', _build_text()))
    assert srcs == set(_relative("tfgrow/**/*.py"))


def test_every_path_build_names_exists():
    # A moved test file keeps its rule only if BUILD follows the move.
    named = re.findall(r'"((?:tfgrow|tests|launchers|benchmarks)/[^"*]+\.py)"', _build_text())
    assert [path for path in named if not os.path.exists(os.path.join(REPO, path))] == []


def test_each_py_test_runs_its_own_file():
    rules = re.findall(r'py_test\(\s*name = "([^"]+)".*?main = "([^"]+)"', _build_text(), re.S)
    assert rules and all(os.path.basename(main) == f"{name}.py" for name, main in rules)
