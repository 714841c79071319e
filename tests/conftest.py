"""Shared fixtures: the repository root and the real CAN captures beside it (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real captures live outside the repository (their licence does not allow copying them in).
CAN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "can"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def can_data() -> Path:
    """../shared/data/can: real CAN captures, one folder per vehicle; skips the test when missing."""
    if not CAN_DATA.is_dir():
        pytest.skip(f"real CAN data not found at {CAN_DATA}")
    return CAN_DATA
