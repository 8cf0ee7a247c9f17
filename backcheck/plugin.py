"""The backcheck pytest plugin (registered through the `pytest11` entry point).

- `--impl SPEC` (repeatable; default: $BACKCHECK_IMPL, else the built-in NumPy backprop) chooses
  the implementations under test; every test taking the `impl` fixture runs once per implementation.
- the `record` fixture takes Verdicts; they travel in the test report's user_properties (as
  JSON strings, so `--junitxml` writes each as a JSON <property>), so under pytest-xdist they
  reach the controller with the report and nothing is lost or doubled.
- `--backcheck-json PATH` / `--backcheck-report PATH` write the collected verdicts at the end
  (with the finite-difference step-size curve, unless `--backcheck-no-step-curve`), and the
  terminal summary says where, one line per output.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from properties import profiles

profiles.register()  # before Hypothesis's own plugin reads --hypothesis-profile

VERDICT_KEY = "backcheck_verdict"  # user_properties name; the value is json.dumps(Verdict.to_json())


def _store(item, verdict) -> None:
    """Keep a Verdict in the test's user_properties, as JSON text: xdist ships the properties
    to the controller, junitxml str()s them into <property value=...>, and both get JSON."""
    item.user_properties.append((VERDICT_KEY, json.dumps(verdict.to_json())))


def stored_verdicts(user_properties) -> list[dict]:
    """The verdict records stored by `_store` in a report's user_properties."""
    return [json.loads(v) for k, v in user_properties if k == VERDICT_KEY]


def pytest_addoption(parser):
    g = parser.getgroup("backcheck")
    g.addoption("--impl", action="append", default=None, metavar="SPEC",
                help="implementation under test: 'builtin', module:attr, path/to/file.py:attr or the name of "
                     "a 'backcheck.implementations' entry point (repeatable; default $BACKCHECK_IMPL or builtin)")
    g.addoption("--no-isolation", action="store_true", default=False,
                help="call implementations in-process instead of in a worker process (trusted code only)")
    g.addoption("--impl-timeout", type=float, default=None, metavar="SECONDS",
                help="per-call timeout for an isolated implementation (default 30)")
    g.addoption("--backcheck-json", default=None, metavar="PATH", help="write all verdicts as JSON here")
    g.addoption("--backcheck-report", default=None, metavar="PATH", help="write the HTML accuracy report here")
    g.addoption("--backcheck-no-step-curve", action="store_true", default=False,
                help="leave the finite-difference step-size curve out of the JSON/HTML (saves a JAX compile)")


def impl_specs(config) -> list[str]:
    specs = config.getoption("--impl") or []
    if not specs and os.environ.get("BACKCHECK_IMPL"):
        specs = [s.strip() for s in os.environ["BACKCHECK_IMPL"].split(",") if s.strip()]
    return specs or ["builtin"]


def pytest_configure(config):
    config.addinivalue_line("markers", "backcheck_impl: test runs once per implementation under test")
    config._backcheck_verdicts = []
    config._backcheck_written = []  # lines for the terminal summary: what was written where
    config._backcheck_started = time.time()
    if not config.getoption("hypothesis_profile", None):
        profiles.load_default()  # "ci" when $CI is set, else "dev"


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    # before any test runs, in every process that runs tests; not in an xdist controller, which
    # runs none and whose second of imports would delay every worker's start
    if not session.config.pluginmanager.hasplugin("dsession"):
        profiles.import_all()


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        specs = impl_specs(metafunc.config)
        metafunc.parametrize("impl", specs, indirect=True, ids=specs)


_loaded: dict = {}


@pytest.fixture
def impl(request):
    """The implementation under test (loaded once per process, isolated unless --no-isolation)."""
    from implementations.registry import LoadError, load
    spec = request.param
    opt = request.config.getoption
    key = (spec, opt("--no-isolation"), opt("--impl-timeout"))
    if key not in _loaded:
        try:
            _loaded[key] = load(spec, isolate=not key[1], timeout=key[2])
        except LoadError as e:
            _loaded[key] = e
    got = _loaded[key]
    if isinstance(got, Exception):
        _store(request.node, got.verdict(check="load"))
        pytest.fail(str(got), pytrace=False)
    return got


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A PluginError escaping a test (the implementation raised, hung, crashed or returned junk)
    is an error result, not a gradient failure: record it and show its one line, no traceback."""
    outcome = yield
    from implementations.errors import PluginError
    if call.excinfo is not None and call.when == "call" and isinstance(call.excinfo.value, PluginError):
        err = call.excinfo.value
        _store(item, err.verdict(check=getattr(item, "originalname", item.name)))
        outcome.get_result().longrepr = str(err)


@pytest.fixture
def impl_spec(request):
    """How the implementation under test was named (--impl), for reproducers."""
    return request.node.callspec.params.get("impl", "builtin")


@pytest.fixture
def record(request):
    """record(verdict): keep a Verdict for the JSON/HTML report (xdist-safe)."""
    def _record(verdict):
        verdict.extra.setdefault("test", request.node.nodeid)
        _store(request.node, verdict)
        return verdict
    return _record


class _VerdictCollector:
    """The single merge point of one session's verdicts. Its hook runs on the xdist controller
    for the workers' reports too. Each test's teardown report carries every user property the
    test gathered (setup, call and teardown, even when setup failed), and every test has exactly
    one, so taking verdicts from it alone neither loses nor doubles any. Bound to its config (not
    a module global) so nested in-process pytest runs do not steal each other's verdicts."""

    def __init__(self, config):
        self.verdicts = config._backcheck_verdicts

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown":
            self.verdicts.extend(stored_verdicts(report.user_properties))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    session.config.pluginmanager.register(_VerdictCollector(session.config))


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the outputs
        return
    json_path = config.getoption("--backcheck-json")
    html_path = config.getoption("--backcheck-report")
    if not (json_path or html_path):
        return
    from reports.results import run_meta, write_outputs
    meta = run_meta(impl_specs(config), time.time() - config._backcheck_started,
                    step_curve=not config.getoption("--backcheck-no-step-curve"),
                    workers=getattr(config.option, "numprocesses", None),
                    seed=getattr(config.option, "hypothesis_seed", None))
    verdicts = config._backcheck_verdicts
    write_outputs(verdicts, json_path=json_path, html_path=html_path, meta=meta)
    n = f"{len(verdicts)} verdict{'' if len(verdicts) == 1 else 's'}"
    if json_path:
        config._backcheck_written.append(f"backcheck: wrote {n} to {json_path}")
    if html_path:
        config._backcheck_written.append(f"backcheck: wrote the HTML report of {n} to {html_path}")


def pytest_terminal_summary(terminalreporter, config):
    # runs after pytest_sessionfinish (terminalreporter's own sessionfinish calls it), and only
    # the controller wrote anything (an xdist worker's list stays empty)
    for line in config._backcheck_written:
        terminalreporter.write_line(line)
