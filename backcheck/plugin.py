"""The backcheck pytest plugin (registered through the `pytest11` entry point).

- `--impl SPEC` (repeatable; default: $BACKCHECK_IMPL, else the built-in NumPy backprop) chooses
  the implementations under test; every test taking the `impl` fixture runs once per implementation.
- the `record` fixture takes Verdicts; they travel in the test report's user_properties, so
  under pytest-xdist they reach the controller with the report and nothing is lost or doubled.
- `--backcheck-json PATH` / `--backcheck-report PATH` write the collected verdicts at the end.
"""
from __future__ import annotations

import os
import time

import pytest

from properties import profiles

profiles.register()  # before Hypothesis's own plugin reads --hypothesis-profile

VERDICT_KEY = "backcheck_verdict"


def pytest_addoption(parser):
    g = parser.getgroup("backcheck")
    g.addoption("--impl", action="append", default=None, metavar="SPEC",
                help="implementation under test: 'builtin', module:attr or path/to/file.py:attr "
                     "(repeatable; default $BACKCHECK_IMPL or builtin)")
    g.addoption("--no-isolation", action="store_true", default=False,
                help="call implementations in-process instead of in a worker process (trusted code only)")
    g.addoption("--backcheck-json", default=None, metavar="PATH", help="write all verdicts as JSON here")
    g.addoption("--backcheck-report", default=None, metavar="PATH", help="write the HTML accuracy report here")


def impl_specs(config) -> list[str]:
    specs = config.getoption("--impl") or []
    if not specs and os.environ.get("BACKCHECK_IMPL"):
        specs = [s for s in os.environ["BACKCHECK_IMPL"].split(",") if s.strip()]
    return specs or ["builtin"]


def pytest_configure(config):
    config.addinivalue_line("markers", "backcheck_impl: test runs once per implementation under test")
    config._backcheck_verdicts = []
    config._backcheck_started = time.time()
    if not config.getoption("hypothesis_profile", None):
        profiles.load_default()  # "ci" when $CI is set, else "dev"


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        specs = impl_specs(metafunc.config)
        metafunc.parametrize("impl", specs, indirect=True, ids=specs)


_loaded: dict = {}


@pytest.fixture
def impl(request):
    """The implementation under test (loaded once per process, possibly isolated)."""
    from implementations.registry import LoadError, load
    spec = request.param
    key = (spec, request.config.getoption("--no-isolation"))
    if key not in _loaded:
        try:
            _loaded[key] = load(spec, isolate=not key[1])
        except LoadError as e:
            _loaded[key] = e
    got = _loaded[key]
    if isinstance(got, Exception):
        from reference.verdict import ERROR, Verdict
        request.node.user_properties.append((VERDICT_KEY, Verdict(
            check="load", status=ERROR, implementation=spec, message=str(got)).to_json()))
        pytest.fail(f"could not load implementation {spec!r}: {got}", pytrace=False)
    return got


@pytest.fixture
def record(request):
    """record(verdict): keep a Verdict for the JSON/HTML report (xdist-safe)."""
    def _record(verdict):
        verdict.extra.setdefault("test", request.node.nodeid)
        request.node.user_properties.append((VERDICT_KEY, verdict.to_json()))
        return verdict
    return _record


def pytest_runtest_logreport(report):
    # Runs on the controller for xdist workers' reports too, so this is the single merge point.
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    verdicts = [v for k, v in report.user_properties if k == VERDICT_KEY]
    if verdicts:
        _config_holder[0]._backcheck_verdicts.extend(verdicts)


_config_holder: list = [None]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _config_holder[0] = session.config


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the outputs
        return
    json_path = config.getoption("--backcheck-json")
    html_path = config.getoption("--backcheck-report")
    if not (json_path or html_path):
        return
    from reports.results import write_outputs
    write_outputs(config._backcheck_verdicts, json_path=json_path, html_path=html_path,
                  meta={"implementations": impl_specs(config), "duration": time.time() - config._backcheck_started,
                        "hypothesis_profile": _profile_name()})


def _profile_name():
    try:
        from hypothesis import settings
        return settings._current_profile
    except Exception:
        return None
