"""Test isolation shared by every test file: gin's global configuration does not leak.

In-process launcher runs (tests/launchers/test_bad_inputs.py) and config tests parse experiment
files and `configs/tiny.gin`, whose `tfgrow.models.stage_depths.cap = 3` would otherwise cap every
builder a later test calls (the published-size tests of tests/models/test_model_builders.py).
"""

import gin
import pytest


@pytest.fixture(autouse=True)
def _clear_gin_config():
    yield
    gin.clear_config()
