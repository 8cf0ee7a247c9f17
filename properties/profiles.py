"""Hypothesis profiles: `dev` (default), `ci` (auto-selected when $CI is set: derandomized, fixed
example counts, no deadline, so JIT compiles cannot cause flakes) and `thorough` (10x examples).
Select one with `pytest --hypothesis-profile NAME` or $BACKCHECK_PROFILE."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

BASE_EXAMPLES = 40
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
         HealthCheck.function_scoped_fixture]  # impl/record are per-test but stateless per example


def register() -> None:
    common = dict(deadline=None, suppress_health_check=_SLOW, print_blob=True)
    settings.register_profile("dev", max_examples=BASE_EXAMPLES, **common)
    settings.register_profile("ci", max_examples=BASE_EXAMPLES, derandomize=True, database=None, **common)
    settings.register_profile("thorough", max_examples=10 * BASE_EXAMPLES, **common)


def load_default() -> str:
    name = os.environ.get("BACKCHECK_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    settings.load_profile(name)
    return name
