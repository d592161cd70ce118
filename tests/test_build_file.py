"""BUILD stays in step with the files: one py_test per test file, one py_binary per launcher,
and every package module in the py_library's srcs."""

import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
