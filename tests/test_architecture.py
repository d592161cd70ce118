"""The package keeps the architecture rules of issue 11 item 5 (measured by
`benchmarks/architecture.py`, from the source alone): no import cycles, no module over 500 lines, no
function over 80, no private names borrowed across packages, no training code reached from the
network code (graph, growing, models) or the method's primitives. The checker itself is checked on a
small package written here, so a rule that stops finding what it should fails too."""

import textwrap

import pytest

from benchmarks import architecture


@pytest.fixture(scope="module")
def report():
    return architecture.measure()


def test_no_import_cycles_at_module_level(report):
    assert report.module_cycles == []


def test_no_function_level_import_hides_a_cycle(report):
    assert report.function_level_cycles == []


def test_no_module_over_500_lines(report):
    assert report.long_modules == []


def test_no_function_over_80_lines(report):
    assert report.long_functions == []


def test_no_private_name_is_used_across_packages(report):
    assert report.private_imports == []


def test_network_code_never_reaches_the_training_code(report):
    assert report.training_imports == []


def _write(root, files):
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


def test_the_checker_finds_each_kind_of_violation(tmp_path):
    long_body = "".join(f"    x{i} = {i}\n" for i in range(80))
    _write(
        tmp_path,
        {
            "tfgrow/__init__.py": "",
            "tfgrow/a.py": "from tfgrow import b\n",
            "tfgrow/b.py": "def f():\n    from tfgrow import a\n",
            "tfgrow/c.py": "import tfgrow.d\n",
            "tfgrow/e/__init__.py": "from tfgrow.e.f import x\n",
            "tfgrow/e/f.py": "from tfgrow.e import g\nx = 1\n",
            "tfgrow/e/g.py": "",
            "tfgrow/d.py": "from tfgrow import c\n",
            "tfgrow/train/__init__.py": "",
            "tfgrow/train/loop.py": "def _load_data():\n    pass\n",
            "tfgrow/morphnet/__init__.py": "",
            "tfgrow/morphnet/run.py": (
                "from tfgrow.train import loop\nfrom tfgrow.train.loop import _load_data\n"
                "loop._load_data()\n"
            ),
            "tfgrow/models/__init__.py": "",
            "tfgrow/models/net.py": "from tfgrow.morphnet import run\n",
            "tfgrow/big.py": '"""Doc."""\n' + "x = 1\n" * 500,
            "tfgrow/long.py": 'def g():\n    """Doc\n\n    lines."""\n' + long_body,
        },
    )
    report = architecture.measure(root=str(tmp_path))
    # `from tfgrow.e import g` runs tfgrow/e/__init__.py, which imports tfgrow.e.f back.
    assert len(report.module_cycles) == 2
    assert "tfgrow.c -> tfgrow.d -> tfgrow.c" in report.module_cycles[0]
    assert "tfgrow.e -> tfgrow.e.f -> tfgrow.e" in report.module_cycles[1]
    assert len(report.function_level_cycles) == 1
    assert "tfgrow.a -> tfgrow.b -> tfgrow.a" in report.function_level_cycles[0]
    assert report.long_modules == ["tfgrow/big.py: 501 lines (> 500)"]
    # `def`, a 3-line docstring and 80 assignments.
    assert report.long_functions == ["tfgrow/long.py g: 84 lines (> 80)"]
    assert report.private_imports == [
        "tfgrow.morphnet.run:2 uses private tfgrow.train.loop._load_data of another package",
        "tfgrow.morphnet.run:3 uses private tfgrow.train.loop._load_data of another package",
    ]
    assert report.training_imports == [
        # `from tfgrow.train import loop` reaches the package tfgrow.train first.
        "training code imported: tfgrow.models.net -> tfgrow.morphnet.run -> tfgrow.train"
    ]
