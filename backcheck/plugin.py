"""The backcheck pytest plugin (registered through the `pytest11` entry point).

- `--impl SPEC` (repeatable; default: $BACKCHECK_IMPL, else the built-in NumPy backprop) chooses
  the implementations under test; every test taking the `impl` fixture runs once per implementation.
- the `record` fixture takes Verdicts; they travel in the test report's user_properties (as
  JSON strings, so `--junitxml` writes each as a JSON <property>), so under pytest-xdist they
  reach the controller with the report and nothing is lost or doubled.
- `--backcheck-json PATH` / `--backcheck-report PATH` write the collected verdicts at the end
  (with the finite-difference step-size curve, unless `--backcheck-no-step-curve`), and the
  terminal summary says where, one line per output.
- fail fast on load: before anything is collected, the reporting process (serial pytest or the
  xdist controller, before it starts workers) loads each implementation once. One that cannot
  be loaded, or does not follow the protocol, is reported once, with its one-line reason (one
  "load" error verdict in the JSON/HTML), and its tests are not run; the run exits with status
  2, at once when nothing is left to check.
- the reference programs the property suite needs are compiled (or loaded) ahead, on
  background threads, while collection and the first tests run (reference.jax_ref.prepare).
- progress (`--backcheck-progress`, backcheck.progress): one updating line in a terminal,
  plain lines in a CI log, for runs of backcheck's property suite.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from properties import profiles

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
    g.addoption("--backcheck-summary", choices=("diagnosis", "off"), default="diagnosis",
                help="after a run with failures, say what is wrong in words (the diagnosis per implementation; "
                     "default), or not (`backcheck check` prints it in its own table)")
    g.addoption("--backcheck-progress", choices=("auto", "line", "plain", "off"), default="auto",
                help="progress of the property suite: one updating line (a terminal), plain lines (a log), or "
                     "none; auto: line in a terminal, plain when not a terminal or $CI is set, none for runs "
                     "without backcheck's property tests")


def default_workers(cpus: int | None = None, load: float | None = None) -> int:
    """pytest-xdist workers that fit this machine, for a run that asks for none: one per core
    left idle by what else runs, up to 4, and 0 (serial) unless at least two are idle. Two
    workers split a cold run's compiles (reference.programs' lock files) and the tests; one
    worker would only add a process's start-up to a serial run. `load`: the busy cores
    (busy_cores(), measured now, when not given)."""
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)
    if load is None:
        load = busy_cores()
    idle = int(cpus - load + 0.5)
    return min(idle, 4) if idle >= 2 else 0


def busy_cores(window: float = 0.2) -> float:
    """How many cores are busy now: /proc/stat's busy time over `window` seconds (Linux), else
    the 1-minute load average. Not the load average where there is a choice: it trails by a
    minute, so a run started just after another (a benchmark's warm run after its cold one, a
    second `backcheck check`) counted the finished run's processes as busy and went serial on
    an idle machine: 21.8 s against 17.1 s with two workers (3 runs each, 2 cores)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0.0)   # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(window)
        total1, idle1 = sample()
        cpus = os.cpu_count() or 1
        return cpus * (1.0 - (idle1 - idle0) / max(total1 - total0, 1e-9))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0


def impl_specs(config) -> list[str]:
    specs = config.getoption("--impl") or []
    if not specs and os.environ.get("BACKCHECK_IMPL"):
        specs = [s.strip() for s in os.environ["BACKCHECK_IMPL"].split(",") if s.strip()]
    return specs or ["builtin"]


@pytest.hookimpl(tryfirst=True)   # the profiles registered before Hypothesis's plugin loads one
def pytest_configure(config):
    config.addinivalue_line("markers", "backcheck_impl: test runs once per implementation under test")
    config._backcheck_verdicts = []
    config._backcheck_written = []  # lines for the terminal summary: what was written where
    config._backcheck_started = time.time()
    config._backcheck_unloadable = dict(getattr(config, "workerinput", {}).get("backcheck_unloadable", {}))
    config._backcheck_progress = None
    # an xdist controller runs no test: it leaves Hypothesis unimported (0.5 s before any worker
    # starts) unless an option of Hypothesis's makes its plugin import it anyway
    controller = not _is_worker(config) and bool(config.getoption("numprocesses", None))
    if not controller or config.getoption("hypothesis_profile", None):
        _load_profile(config)


def _load_profile(config) -> None:
    profiles.register()
    if not config.getoption("hypothesis_profile", None):
        profiles.load_default()  # $BACKCHECK_PROFILE, else "ci" when $CI is set, else "dev"


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _is_controller(config) -> bool:
    return config.pluginmanager.hasplugin("dsession")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    # before any test runs, in every process that runs tests; not in an xdist controller, which
    # runs none and whose second of imports would delay every worker's start
    if not _is_controller(session.config):
        profiles.import_all()


def pytest_generate_tests(metafunc):
    if "impl" in metafunc.fixturenames:
        unloadable = metafunc.config._backcheck_unloadable
        specs = [s for s in impl_specs(metafunc.config) if s not in unloadable]
        metafunc.parametrize("impl", specs, indirect=True, ids=specs)


# --- fail fast on load ---------------------------------------------------------------------

def _check_loadable(session) -> None:
    """Load every implementation named (--impl, $BACKCHECK_IMPL) once, now (see the module
    docstring); not the built-in, part of backcheck itself, so that a run of other tests pays
    nothing. Serially the loaded object is kept for the `impl` fixture; the xdist controller
    loads each in a worker process of its own (isolated, whatever --no-isolation says: it only
    asks whether it loads), closes it, and tells the workers which ones to leave out
    (pytest_configure_node)."""
    from implementations.registry import BUILTIN, LoadError, load
    config = session.config
    controller = _is_controller(config)
    for spec in dict.fromkeys(impl_specs(config)):
        if spec.strip() in BUILTIN:
            continue
        key = _load_key(config, spec)
        try:
            got = load(spec, isolate=True if controller else not key[1], timeout=key[2])
        except LoadError as e:
            config._backcheck_unloadable[spec] = str(e)
            config._backcheck_verdicts.append(e.verdict(check="load").to_json())
            continue
        if controller:
            getattr(got, "close", lambda: None)()
        else:
            _loaded[key] = got
    bad = config._backcheck_unloadable
    if bad and len(bad) == len(set(impl_specs(config))):  # nothing left to check: stop here
        _write_outputs(config)
        lines = [f"backcheck: {why}" for why in bad.values()] + config._backcheck_written
        _exiting.append(config)
        pytest.exit("\n".join(lines), returncode=2)   # pytest prints it (as "Exit: ..."), once


@pytest.hookimpl(trylast=True)
def pytest_keyboard_interrupt(excinfo):
    """Our own exit (nothing loadable) is said once: pytest prints it to stderr; the terminal
    reporter's "!!! Exit !!!" banner would say it a second time."""
    reporter = _exiting and _exiting.pop().pluginmanager.get_plugin("terminalreporter")
    if reporter and hasattr(reporter, "_keyboardinterrupt_memo"):
        reporter._keyboardinterrupt_memo = None


_exiting: list = []


def _load_key(config, spec):
    opt = config.getoption
    return spec, opt("--no-isolation"), opt("--impl-timeout")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist (controller): what the workers need from it."""
    node.workerinput["backcheck_unloadable"] = dict(node.config._backcheck_unloadable)
    progress = node.config._backcheck_events
    if progress is not None:
        node.workerinput["backcheck_events"] = progress.path


_loaded: dict = {}


@pytest.fixture
def impl(request):
    """The implementation under test (loaded once per process, isolated unless --no-isolation)."""
    from implementations.registry import LoadError, load
    spec = request.param
    key = _load_key(request.config, spec)
    if key not in _loaded:
        try:
            _loaded[key] = load(spec, isolate=not key[1], timeout=key[2])
        except LoadError as e:  # loaded in the controller but not here (rare): each test says so
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
    elif (call.when == "call" and outcome.get_result().failed and "impl" in getattr(item, "fixturenames", ())
          and not any(v["status"] in ("failed", "error", "reference_mismatch")
                      for v in stored_verdicts(item.user_properties))):
        # a check test that failed without recording why (e.g. Hypothesis's Flaky): the run's
        # summary must not read PASSED while pytest exits 1
        from reference.verdict import ERROR, Verdict
        what = f"{call.excinfo.typename}: {str(call.excinfo.value).strip().splitlines()[0] if str(call.excinfo.value).strip() else ''}"
        impl = item.callspec.params.get("impl", "builtin") if hasattr(item, "callspec") else "builtin"
        _store(item, Verdict(getattr(item, "originalname", item.name), ERROR, implementation=impl,
                             message=f"the test failed without a verdict: {what[:300]}",
                             extra={"test": item.nodeid}))


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
    config = session.config
    config.pluginmanager.register(_VerdictCollector(config))
    config._backcheck_events = None
    if not _is_worker(config):
        _check_loadable(session)
        _start_progress(config)


def _run_meta(config) -> dict:
    from reports.results import run_meta
    profile = getattr(config, "_backcheck_profile", None)   # an xdist controller's: its workers'
    if profile is None and not profiles.registered():
        _load_profile(config)
    return run_meta(impl_specs(config), time.time() - config._backcheck_started,
                    step_curve=getattr(config, "_backcheck_step_curve", None) or _wants_step_curve(config),
                    workers=getattr(config.option, "numprocesses", None),
                    seed=getattr(config.option, "hypothesis_seed", None), profile=profile)


def _write_outputs(config) -> None:
    """The JSON and HTML outputs asked for, and the diagnosis in words for the terminal summary
    (made even without outputs when something failed: a plain `pytest` run says what is wrong)."""
    json_path = config.getoption("--backcheck-json")
    html_path = config.getoption("--backcheck-report")
    verdicts = config._backcheck_verdicts
    outputs = bool(json_path or html_path)
    if not (outputs or any(v.get("status") in ("failed", "error") for v in verdicts)):
        return
    from reports.results import results_document, write_outputs
    from reports.table import diagnosis_lines
    meta = _run_meta(config)
    doc = (write_outputs(verdicts, json_path=json_path, html_path=html_path, meta=meta) if outputs
           else results_document(verdicts, meta))
    if config.getoption("--backcheck-summary") == "diagnosis":
        config._backcheck_diagnosis = diagnosis_lines(doc.get("diagnoses"), doc.get("diagnosis_errors") or ())
    if not outputs:
        return
    n = f"{len(verdicts)} verdict{'' if len(verdicts) == 1 else 's'}"
    if json_path:
        config._backcheck_written.append(f"backcheck: wrote {n} to {json_path}")
    if html_path:
        config._backcheck_written.append(f"backcheck: wrote the HTML report of {n} to {html_path}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if _is_worker(config) and _writes_outputs(config):
        _exit_now()


def _writes_outputs(config) -> bool:
    return bool(config.getoption("--backcheck-json") or config.getoption("--backcheck-report"))


def _exit_now() -> None:
    """End an xdist worker of a run that writes results (`backcheck check`) once it has sent
    them (xdist's workerfinished, at the end of pytest_sessionfinish): its exit handlers run (the
    reference programs' builds are stored: programs._stop), then the process ends without waiting
    for the controller's shutdown message and tearing down JAX, which took 1.5 s of the main job's
    end (the last result at 17.1 s, the controller done at 18.8 s, measured with timestamps in
    both processes). xdist takes a worker's end after workerfinished as normal."""
    import atexit
    import sys
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def _wants_step_curve(config) -> bool:
    return _writes_outputs(config) and not config.getoption("--backcheck-no-step-curve")


@pytest.hookimpl(tryfirst=True)   # written before xdist's sessionfinish waits for the workers to exit
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if _is_worker(config):  # an xdist worker: the controller writes the outputs...
        if _wants_step_curve(config) and config.workerinput.get("workerid") == "gw0":
            # ... with the report's step-size curve from here, where JAX and the programs are
            # loaded already (~0.05 s): the controller, which imports neither, took 2 s for it
            from reports.stepcurve import step_curve
            try:
                config.workeroutput["backcheck_step_curve"] = step_curve()
            except Exception:   # the controller computes it (and says why it could not)
                pass
        from reports.results import hypothesis_profile
        config.workeroutput["backcheck_profile"] = hypothesis_profile()
        return
    if config._backcheck_progress is not None and config._backcheck_progress.active:
        config._backcheck_progress.finish()
    _write_outputs(config)
    if config._backcheck_unloadable:  # some implementation was never checked: the run is incomplete
        session.exitstatus = 2


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist: a worker is done; the step-size curve it computed (pytest_sessionfinish) is the
    run's, and so is the Hypothesis profile it ran under."""
    output = getattr(node, "workeroutput", {})
    if output.get("backcheck_step_curve") is not None:
        node.config._backcheck_step_curve = output["backcheck_step_curve"]
    if output.get("backcheck_profile") is not None:
        node.config._backcheck_profile = output["backcheck_profile"]


def pytest_terminal_summary(terminalreporter, config):
    # runs after pytest_sessionfinish (terminalreporter's own sessionfinish calls it), and only
    # the controller wrote anything (an xdist worker's list stays empty)
    for why in config._backcheck_unloadable.values():
        terminalreporter.write_line(f"backcheck: not checked: {why}")
    diagnosis = getattr(config, "_backcheck_diagnosis", None)
    if diagnosis:
        terminalreporter.section("backcheck: what is wrong", sep="=")
        for line in diagnosis[1:]:   # [0] is the "What is wrong:" title the section line says
            terminalreporter.write_line(line)
    for line in config._backcheck_written:
        terminalreporter.write_line(line)


# --- reference programs ahead, and progress --------------------------------------------------

_SUITE = os.path.dirname(os.path.abspath(profiles.__file__))   # the properties package


# The suite's tests that need no compiled reference program: the perceptron's bound, tight
# families and invariances, in exact rational arithmetic. They run first, so that a cold run
# gives its first results while the reference programs compile on background threads (started
# at once then, not when the first program is needed: nothing would be compiling meanwhile).
_NO_PROGRAM = ("test_perceptron.py",)


def _in_suite(item) -> bool:
    return os.path.dirname(str(item.path)) == _SUITE


def _needs_no_program(item) -> bool:
    return _in_suite(item) and item.path.name in _NO_PROGRAM


def pytest_collection_modifyitems(session, config, items):
    # a stable sort: the same order in every xdist worker (its scheduler requires one)
    items.sort(key=lambda i: not _needs_no_program(i))


def pytest_collection_finish(session):
    config = session.config
    if _is_controller(config) or not any(map(_in_suite, session.items)):
        return   # programs ahead and progress are for runs of backcheck's property suite
    if config.option.collectonly:
        return   # nothing will run: no programs, no "0 tests" line
    _show_progress(config, len(session.items))
    items = session.items
    _prepare_programs(config, now=_needs_no_program(items[0]) and not all(map(_needs_no_program, items)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    if any("properties/test_" in i for i in ids):
        _show_progress(node.config, len(ids))


def _show_progress(config, n_tests: int) -> None:
    progress = config._backcheck_progress
    if progress is not None:
        progress.collected(n_tests)
        progress.activate()


def _prepare_programs(config, now: bool = False) -> None:
    """When the run first needs a reference program, start compiling (or loading) all the
    suite's on background threads (reference.jax_ref.prepare); a run that needs none (the
    perceptron tests alone) compiles none. An xdist worker takes them in its own order (worker
    k starts 3k programs in), so cold workers split the compiles between them (the lock files
    of reference.programs) instead of both waiting on the same one."""
    from reference import programs
    from backcheck.progress import EventsFile, label
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    rank = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) if workers else 0
    path = getattr(config, "workerinput", {}).get("backcheck_events")
    shown = config._backcheck_progress
    if path:
        events = EventsFile(path)
        tell = events.write
    elif shown is not None:
        tell = shown.program
    else:
        tell = None
    def listener(event, key):
        tell(event, label(key))
    if tell is not None:
        programs.listen(listener)

    def start():
        from properties.strategies import reference_buckets
        from reference import jax_ref
        n = jax_ref.prepare(reference_buckets(), threads=1 if workers else min(2, os.cpu_count() or 1),
                            rotate=rank * 3)
        if tell is not None:
            tell("planned", str(n))
    if now:   # the first tests need none, the later ones do: compile while the first ones run
        start()
    else:
        programs.when_needed(start)
    config.add_cleanup(lambda: (programs.forget(listener), programs.forget(start)))


def _progress_mode(config) -> str:
    mode = config.getoption("--backcheck-progress")
    if mode != "auto":
        return mode
    tty = getattr(config.get_terminal_writer(), "hasmarkup", False) or os.isatty(1)
    verbose = config.get_verbosity() > 0
    return "plain" if os.environ.get("CI") or not tty or verbose else "line"


def _start_progress(config) -> None:
    """The progress display of the reporting process (see backcheck.progress); in auto mode it
    shows itself only once collection has found backcheck's property tests."""
    mode = _progress_mode(config)
    if mode == "off":
        return
    from backcheck.progress import EventsFile, Progress
    try:
        fd = os.dup(1)   # the terminal, as it is before any test's output capture
    except OSError:
        return
    progress = Progress(fd, mode == "line", impls=impl_specs(config))
    config._backcheck_progress = progress
    config.pluginmanager.register(_ProgressFeed(progress))
    if config.get_verbosity() <= 0:   # the progress replaces pytest's dots, file names and [NN%]
        progress.on_activate = lambda: _quiet_pytest_progress(config)
    if config.getoption("--backcheck-progress") != "auto":
        progress.activate()
    poll = None
    if _is_controller(config):
        import tempfile
        f = tempfile.NamedTemporaryFile(prefix="backcheck-events-", suffix=".txt", delete=False)
        f.close()
        events = config._backcheck_events = EventsFile(f.name)

        def poll():
            for event, text in events.read_new():
                progress.program(event, text)
        config.add_cleanup(lambda: os.path.exists(f.name) and os.unlink(f.name))
    progress.start_timer(poll=poll)


def _quiet_pytest_progress(config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.flush()
        reporter.showfspath = False
        reporter._show_progress_info = False


@pytest.hookimpl(wrapper=True)
def pytest_report_teststatus(report, config):
    result = yield
    progress = config._backcheck_progress
    if progress is not None and progress.active and result and config.get_verbosity() <= 0:
        category, _, word = result
        return category, "", word   # the progress display counts it instead of a dot
    return result


class _ProgressFeed:
    """Test results into the progress display (on the xdist controller, the workers' too). A
    test is done at its teardown report; it failed if any of its phases did."""

    def __init__(self, progress):
        self.progress, self.failing = progress, set()

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failing.add(report.nodeid)
        if report.when == "teardown":
            self.progress.test_done(report.nodeid, report.nodeid in self.failing)
            self.failing.discard(report.nodeid)
