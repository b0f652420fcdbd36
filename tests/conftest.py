"""Shared fixtures of the test suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# Rules call `python -m photoz`: the interpreter running the tests must be the
# first `python` on PATH for the workflow runs the tests start.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

REAL_FIELD = ROOT.parent / "shared" / "data" / "sdss-field-2583-2-136"


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def real_field():
    """The real SDSS field (run 2583, camcol 2, field 136); skips where absent."""
    if not (REAL_FIELD / "frame-r-002583-2-0136.fits.bz2").exists():
        pytest.skip(f"real SDSS field not found at {REAL_FIELD} (only in the project's shared data)")
    return REAL_FIELD


@pytest.fixture(scope="session")
def default_config():
    from photoz.config import load_config

    return load_config(ROOT / "config.yaml")
