from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import matplotlib
import pytest
from hypothesis import settings

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).parent))  # the shared test catalogue

#: In CI (``CI=true``) every optional dependency is installed, so a missing one is a failure.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Hypothesis: in CI the full property campaign (tests/test_properties.py scales with
# max_examples), derandomized so that a CI run is reproducible; locally a fifth of it.
settings.register_profile("ci", max_examples=100, derandomize=True, database=None)
settings.register_profile("dev", max_examples=20)
settings.load_profile("ci" if IN_CI else "dev")


def optional_module(name: str, extra: str) -> ModuleType:
    """Import an optional dependency: skip the test where it is missing, fail in CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f"CI must install {name} (pip install 'scaleinv[{extra}]')")
        pytest.skip(f"{name} is not installed (pip install 'scaleinv[{extra}]')")


def require_program(name: str) -> None:
    """Skip a test where a program (e.g. ``latexmk``) is missing, fail in CI."""
    if shutil.which(name) is None:
        if IN_CI:
            pytest.fail(f"CI must install {name} (see .ci/run)")
        pytest.skip(f"{name} is not installed")


@pytest.fixture
def tex() -> None:
    """Tests that build PDFs: they need latexmk and pdftoppm (CI installs TeX Live)."""
    require_program("latexmk")
    require_program("pdftoppm")

