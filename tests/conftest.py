"""Shared test helpers: paths of the recorded Fluent Bit fixtures and of the project's configs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLUENT_BIT_FIXTURES = ROOT / "tests" / "fixtures" / "fluent-bit"
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """Configs, input and Kafka messages recorded from a real Fluent Bit v4.2.8."""
    return FLUENT_BIT_FIXTURES
