"""Hypothesis profiles: `dev` (default), `ci` (auto-selected when $CI is set: derandomized, fixed
example counts, no deadline, so JIT compiles cannot cause flakes) and `thorough` (10x examples).
Select one with `pytest --hypothesis-profile NAME` or $BACKCHECK_PROFILE."""
from __future__ import annotations

import os

BASE_EXAMPLES = 40
_registered = []


def register() -> None:
    # Hypothesis imported here, not with the module: an xdist controller runs no test, and its
    # import (0.5 s) would delay every worker's start (backcheck.plugin registers on demand)
    from hypothesis import HealthCheck, Phase, settings
    slow = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture]  # impl/record are per-test but stateless per example
    common = dict(deadline=None, suppress_health_check=slow, print_blob=True)
    settings.register_profile("dev", max_examples=BASE_EXAMPLES, **common)
    settings.register_profile("ci", max_examples=BASE_EXAMPLES, derandomize=True, database=None, **common)
    settings.register_profile("thorough", max_examples=10 * BASE_EXAMPLES, **common)
    # ci's exact examples without shrinking: for meta-tests that only ask *whether* ci catches a bug
    settings.register_profile("ci-noshrink", settings.get_profile("ci"),
                              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    _registered.append(True)


def registered() -> bool:
    return bool(_registered)


def load_default() -> str:
    from hypothesis import settings
    name = os.environ.get("BACKCHECK_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    settings.load_profile(name)
    return name


def import_all() -> None:
    """Import every module of backcheck's packages up front. Hypothesis mixes literal constants
    from the loaded local modules into its draws, so a module imported lazily mid-run would make
    the `ci` profile's examples depend on test order (and on xdist's scheduling)."""
    import importlib
    import pkgutil
    for pkg_name in ("reference", "implementations", "properties", "reports", "backcheck"):
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("test_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
