"""Compiled reference programs, kept in memory and on disk as XLA executables.

Every shape bucket needs its own executable for each entry point of the reference (gradient,
batched perturbations, directional costs). JAX's persistent compilation cache saves only XLA's
compile: a new process still traces and lowers every program before it can look one up, about
a second each here (the scan over layers, the switches over activations and losses, their
gradient), and each pytest-xdist worker pays that again for every bucket it meets. So the
executable itself is stored, and a later process loads it in about 0.1 s. A file that fails to
load is recompiled and replaced; one that cannot be written only costs the next process a
compile.

What an executable is keyed by is what it is built from, nothing more: the traced code (the
bytecode of the entry point and of every function, constant and module of this package it
reaches, found by walking the code, `_code_digest`), the argument shapes, and the build (jax
and jaxlib, Python, XLA_FLAGS, the CPU). An edit anywhere else, in a comment, a docstring or
the Python around the programs, keeps every stored program valid.

The cache prunes itself after each compile (`prune`): a program superseded by a newer build of
the same entry point and shapes, or stored in an older format, goes once it has not been used
for a day; anything unused for MAX_AGE_DAYS goes; and past MAX_BYTES the least recently used
go first. Processes that need the same missing program (xdist workers) compile it once: the
others wait on its lock file and load the copy.

A small program a caller waits for (not in memory, on disk, or being made by another process)
is built fast first (`compiled(..., fast=True)`, the padded reference's small buckets): XLA at LLVM's -O0 compiles in a third of the time and runs 3-5x slower, so
the first verdict comes sooner; the optimized build follows on a background thread (stored, and
put in place between cases by `adopt()`). The two agree to rounding, not bit for bit, so the
first cases of a cold process may see reference values that differ from a warm run's in the
last digits, inside the reference's own rounding error, which the error model bounds for any
order of operations.

`prepare()` compiles (or loads) a known set of programs on a background thread, so their cost
overlaps the rest of start-up; `listen()` reports each program as it starts and becomes ready
(the pytest plugin's progress line).

It replaces JAX's persistent compilation cache for these programs. It lives in
`$BACKCHECK_JAX_CACHE/executables` (default ~/.cache/backcheck/jax); BACKCHECK_JAX_CACHE=off
turns it off.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import platform
import re
import sys
import tempfile
import threading
import time
import types
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path

import jax
import jaxlib
from jax.experimental import serialize_executable

_HERE = Path(__file__).resolve().parent   # the package whose code the programs trace
FORMAT = 2            # how executables are stored; bump when that changes
MAX_AGE_DAYS = 30     # a stored program unused this long is deleted
SUPERSEDED_DAYS = 1   # ... one superseded by a newer build, after this long unused
MAX_BYTES = 512 << 20
# How XLA:CPU compiles these programs: without its newer (MLIR) fusion emitters, at LLVM's -O1.
# Measured on the 16-wide, 32-sample buckets, the three programs of the dense one compile in
# 1.6-1.8 s instead of 3.3-3.7 s, the maxout one's in 2.3-2.6 s instead of 4.6 s, and every call
# runs as fast or faster (perturbed costs 8.2 vs 9.9 ms, maxout 11 vs 13 ms; 256 wide the same)
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}
# A program a caller is waiting for (none in memory, on disk or on its way) is first built at
# LLVM's -O0 and used at once, then rebuilt with COMPILER_OPTIONS on a background thread from the
# same lowering; that build is the one stored, and replaces the fast one at the next adopt()
# (`_upgrade`). Measured on the 16-wide, 32-sample dense bucket: the three programs compile in
# 0.7-0.9 s instead of 2.8 s and ~1 CPU s instead of 4.7 (XLA compiles on both cores), and run
# 2.5-5x slower (gradient 2.3 vs 0.58 ms, perturbed 6.2 vs 1.8 ms): one network's first
# run_checks took 2.3-2.5 s instead of 4.5 (benchmarks/bench_startup.py).
FAST_OPTIONS = {**COMPILER_OPTIONS, "xla_backend_optimization_level": 0}
_NAME = re.compile(r"(?P<name>[a-z_]+)-(?P<slot>[0-9a-f]{16})-(?P<build>[0-9a-f]{16})\.bin$")

_programs: dict = {}
_pending: dict = {}   # key -> threading.Event, set once prepare() has the program
_queue: dict = {}     # key -> (fn, args, fast): queued by prepare(), not started yet (in order)
_threads: list = []
_on_first_need: list = []
_lock = threading.Lock()
_key_locks: dict = {}
_listeners: list = []
stats = {"loaded": 0, "compiled": 0, "fast": 0}   # how this process got its programs (fast: -O0 builds)
_upgrades: list = []   # (key, lowered, path): fast builds waiting for their optimized one
_upgrading = False     # a thread is working through _upgrades
_adoptable: dict = {}  # key -> optimized build done, in use from the next adopt()
_fast_builds = [0]     # fast builds under way (under _lock): an optimized build waits for them (_upgrade)


def cache_dir() -> Path | None:
    root = os.environ.get("BACKCHECK_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "backcheck", "jax"))
    return None if root == "off" else Path(root) / "executables"


def _cpu() -> str:
    """The CPU's identity: XLA compiles for the host's instruction set."""
    try:
        with open("/proc/cpuinfo") as f:
            return "".join(sorted({l for l in f if l.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor()


@lru_cache(maxsize=None)
def _environment_key() -> str:
    h = hashlib.sha256()
    for part in (str(FORMAT), jax.__version__, jaxlib.__version__, platform.python_version(), platform.machine(),
                 _cpu(), os.environ.get("XLA_FLAGS", ""), str(jax.config.jax_enable_x64), repr(sorted(COMPILER_OPTIONS.items()))):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def _ours(path) -> bool:
    return bool(path) and os.path.dirname(os.path.abspath(path)) == str(_HERE)


def _code_digest(fn) -> str:
    with _digest_lock:   # computed once per entry point, by one thread at a time
        return _code_digest_of(fn)


_digest_lock = threading.Lock()


@lru_cache(maxsize=None)
def _code_digest_of(fn) -> str:
    """A digest of everything of this package that tracing `fn` can run: its bytecode and
    constants, then, through the global names it uses, each function, closure, container,
    class and module of the package it reaches (a module by its whole source). Line numbers,
    comments, docstrings and unreached code do not enter. Code outside the package (jax,
    numpy) enters through the build key instead."""
    h = hashlib.sha256()
    seen: set = set()

    def add(*parts):
        for p in parts:
            h.update(str(p).encode() + b"\0")

    def code(co, globs):
        add(co.co_name, co.co_argcount, co.co_kwonlyargcount, co.co_names)
        h.update(co.co_code)
        consts = co.co_consts
        if consts and isinstance(consts[0], str):
            consts = consts[1:]   # a code object's first constant is its docstring (None without one)
        for c in consts:
            if isinstance(c, types.CodeType):
                code(c, globs)
            else:
                value(c)
        for name in co.co_names:   # globals, and attribute names that happen to be globals too
            if name in globs:
                add("global", name)
                visit(globs[name])

    def value(c):
        if isinstance(c, (frozenset, set)):   # their repr's order changes with hash randomization
            add(type(c).__name__, sorted(repr(x) for x in c))
        else:
            add(repr(c))

    def visit(obj):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            if not _ours(obj.__code__.co_filename):
                add("foreign", getattr(obj, "__module__", ""), obj.__qualname__)
                return
            code(obj.__code__, obj.__globals__)
            for d in (obj.__defaults__ or ()) + tuple((obj.__kwdefaults__ or {}).values()):
                visit(d)
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents)
                except ValueError:  # an empty cell
                    add("empty cell")
        elif isinstance(obj, types.ModuleType):
            add("module", obj.__name__)
            if _ours(getattr(obj, "__file__", None)):
                h.update(Path(obj.__file__).read_bytes())
        elif isinstance(obj, type):
            add("class", obj.__module__, obj.__qualname__)
            if _ours(getattr(sys.modules.get(obj.__module__), "__file__", None)):
                for name, attr in sorted(vars(obj).items()):   # fields, annotations, methods
                    if not name.startswith("__") or name == "__annotations__":
                        add(name)
                        visit(attr)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                value(k)
                visit(v)
        elif isinstance(obj, (list, tuple)):
            add(type(obj).__name__, len(obj))
            for x in obj:
                visit(x)
        elif isinstance(obj, (int, float, complex, str, bytes, bool, type(None), frozenset, set)):
            value(obj)
        else:   # a wrapped callable (custom_jvp, partial, ...): what it wraps
            add("object", type(obj).__module__, type(obj).__qualname__)
            for attr in ("fun", "jvp", "fwd", "bwd", "func", "__wrapped__"):
                inner = getattr(obj, attr, None)
                if inner is not None and inner is not obj:
                    visit(inner)

    visit(fn)
    return h.hexdigest()


def _signature(name: str, args) -> tuple:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return (name, str(tree)) + tuple((tuple(getattr(a, "shape", ())), str(getattr(a, "dtype", type(a))))
                                     for a in leaves)


def path_of(name: str, fn, args) -> Path | None:
    """Where the executable of `fn` for arguments shaped like `args` is stored (None: no cache):
    `name-<slot>-<build>.bin`, the slot from the argument shapes, the build from the code and
    the environment, so that a newer build of the same slot is recognizable as superseding it."""
    folder = cache_dir()
    if folder is None:
        return None
    slot = hashlib.sha256(repr(_signature(name, args)).encode()).hexdigest()[:16]
    build = hashlib.sha256((_environment_key() + _code_digest(fn)).encode()).hexdigest()[:16]
    return folder / f"{name}-{slot}-{build}.bin"


def listen(callback) -> None:
    """callback(event, key): event "compiling" (a program is being compiled), "ready" (it is in
    memory: loaded or compiled). Called from whichever thread gets the program."""
    _listeners.append(callback)


def _tell(event: str, key) -> None:
    for cb in list(_listeners):
        try:
            cb(event, key)
        except Exception:  # a progress display never breaks a computation
            pass


def compiled(key: tuple, fn, args: tuple, fast: bool = False):
    """The executable of `fn` for arguments shaped like `args`: from memory, else from disk,
    else compiled (and stored). `key` (the program's name first) must determine the shapes
    and dtypes of `args`: it is the cheap in-memory key (the full signature costs ~0.1 ms).
    A program prepare() has queued but not started is taken over (got here, now); one it is
    getting is waited for. `fast`: one that has to be compiled now is built fast first
    (FAST_OPTIONS), for programs whose calls are short, where the compile is the wait; a big
    program's calls run 3-5x slower at -O0 for the whole case (a 784-256-128-10 network's
    structured checks: 95 s against 27 s), so it is not."""
    program = _programs.get(key)
    if program is not None:
        return program
    _first_need()
    with _lock:
        queued = _queue.pop(key, None)
        claimed = queued is not None
        waiting = None if claimed else _pending.get(key)
    if waiting is not None:
        waiting.wait()
        program = _programs.get(key)
        if program is not None:
            return program
    # one prepare() queued without `fast` (the plugin's, for a whole run) is compiled as it would
    # have been: optimized, under its lock file, so that xdist workers never build it twice
    try:
        return _get(key, fn, args, fast and (queued is None or queued[2]))
    finally:
        if claimed:
            _pending.pop(key).set()


def when_needed(start) -> None:
    """Call start() (e.g. a prepare() of the programs a run will use) when this process first
    needs a program it does not hold: a run that needs none compiles none."""
    _on_first_need.append(start)


def forget(callback) -> None:
    """Undo listen() and when_needed() for `callback` (a session that ends)."""
    for registry in (_listeners, _on_first_need):
        while callback in registry:
            registry.remove(callback)


def _first_need() -> None:
    while _on_first_need:
        start = _on_first_need.pop(0)
        try:
            start()
        except Exception:  # preparing ahead is an optimization: the program asked for comes anyway
            pass


def _get(key, fn, args, fast: bool = False):
    with _lock:
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:   # one program at a time per key; different keys compile side by side
        program = _programs.get(key)
        if program is None:
            program = _load_or_compile(key, fn, args, fast)
            _programs[key] = program
    _tell("ready", key)
    return program


def prepare(entries, background: bool = True, threads: int = 1, fast: bool = False) -> list:
    """Get each (key, fn, args) in `entries` ready, in order: loaded from disk or compiled, on
    `threads` daemon threads (or now, in this thread), so that a later compiled(key, ...) finds
    it in memory, or waits for it if it is still being made. Returns the threads started.
    XLA compiles with the GIL released: two threads use two cores where there are two. `fast`:
    programs about to be waited for, built fast first (FAST_OPTIONS) like a waited-for one."""
    with _lock:
        for key, fn, args in entries:
            if key not in _programs and key not in _pending:
                _pending[key] = threading.Event()
                _queue[key] = (fn, args, fast)

    def run():
        while True:
            with _lock:
                if not _queue:
                    return
                key = next(iter(_queue))
                fn, args, fast_first = _queue.pop(key)
            try:
                _get(key, fn, args, fast_first)
            except Exception:  # the caller's own compiled() will meet (and raise) the same problem
                pass
            finally:
                _pending.pop(key).set()
    if not background:
        run()
        return []
    started = [threading.Thread(target=run, name=f"backcheck-programs-{i}", daemon=True)
               for i in range(min(threads, len(_queue)))]
    for t in started:
        t.start()
    _threads.extend(started)
    return started


@atexit.register
def _stop() -> None:
    """At exit: nothing new is started, and a program being made is finished (and stored), as
    are the optimized builds of fast ones (the next process loads them instead of compiling). A
    daemon thread still inside XLA when the interpreter finalizes would abort the process."""
    with _lock:
        _queue.clear()
    _join()


def _join() -> None:
    """Wait for every background thread, those started meanwhile too (a fast build's optimized one)."""
    while True:
        alive = [t for t in list(_threads) if t.is_alive()]
        if not alive:
            return
        for t in alive:
            t.join()


def adopt() -> None:
    """Put the optimized builds finished so far in place of their fast ones. Called between
    cases (properties.checks.Context), never inside one: the two builds agree to rounding, not
    bit for bit (LLVM -O0 and -O1 order some operations differently), and a case's checks all
    see one build of each program."""
    while _adoptable:
        key, program = _adoptable.popitem()
        _programs[key] = program


def settle() -> None:
    """Wait until every background build (prepared, and optimized builds of fast ones) is done,
    and adopt() the optimized ones."""
    _join()
    adopt()


def holds(key) -> bool:
    """Whether this process has the program, or has it on its way (queued or being made)."""
    return key in _programs or key in _pending


def count() -> int:
    """Programs this process holds (each bucket costs one per entry point)."""
    return len(_programs)


def _load(path: Path):
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        program = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # missing, truncated, or from an incompatible build: compiled anew
        return None
    try:
        if time.time() - path.stat().st_mtime > 3600:
            os.utime(path)   # its last use, for pruning (at most hourly: no write per load)
    except OSError:
        pass
    stats["loaded"] += 1
    return program


def _locked(path: Path) -> bool:
    """Whether another process holds the lock `_file_lock(path)` takes (POSIX; elsewhere no)."""
    try:
        import fcntl
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
    except (ImportError, OSError):
        pass
    return False


@contextmanager
def _file_lock(path: Path):
    """An exclusive lock across processes (POSIX); elsewhere, none (at worst a program is
    compiled twice)."""
    try:
        import fcntl
        f = open(path, "a+")
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
    finally:
        f.close()


def _compile(fn, args, lowered=None, options=COMPILER_OPTIONS):
    # compiled afresh, never taken from JAX's own persistent cache (if a user turned it on):
    # an executable JAX loaded from there serializes without its code ("Function ... not found"
    # when the copy runs)
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        program = (lowered or jax.jit(fn).trace(*args).lower()).compile(compiler_options=options)
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
    stats["compiled" if options is COMPILER_OPTIONS else "fast"] += 1
    return program


def _load_or_compile(key, fn, args, fast: bool = False):
    path = path_of(key[0], fn, args)
    if path is not None:
        program = _load(path)
        if program is not None:
            return program
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            path = None
    if fast and (path is None or not _locked(path.with_suffix(".lock"))):
        # a caller is waiting (or soon will be) and no other process is making it (if one is,
        # loading its copy below costs no tracing): a fast build now, the optimized one behind it
        _tell("compiling", key)
        with _lock:
            _fast_builds[0] += 1
        try:
            lowered = jax.jit(fn).trace(*args).lower()
            program = _compile(fn, args, lowered, FAST_OPTIONS)
        finally:
            with _lock:
                _fast_builds[0] -= 1
        _upgrade(key, lowered, path)
        return program
    if path is None:
        _tell("compiling", key)
        return _compile(fn, args)
    return _stored_build(path, lambda: _compile(fn, args), key)


def _stored_build(path: Path, build, key=None):
    """Under the program's lock file: the copy another process stored meanwhile (it was
    compiling it: wait, then load), else build() it and store it. `key`: told as compiling."""
    with _file_lock(path.with_suffix(".lock")):
        program = _load(path)
        if program is not None:
            return program
        if key is not None:
            _tell("compiling", key)
        program = build()
        _store(path, program)
    prune(path.parent, keep=path)
    return program


def _upgrade(key, lowered, path) -> None:
    """Queue the optimized build of a fast one; one daemon thread works through the queue, each
    build stored on disk when done (unless another process stored it first: then its copy is
    loaded) and taking the fast one's place at the next adopt(). At exit the builds are
    finished (_stop): the next process loads them."""
    global _upgrading
    with _lock:
        _upgrades.append((key, lowered, path))
        if _upgrading:
            return   # the thread working the queue takes this one too
        _upgrading = True

    def run():
        global _upgrading
        _lower_priority()
        while True:
            while _fast_builds[0] or _queue:
                time.sleep(0.01)   # programs that will be waited for come first: an optimized one only speeds up runs
            with _lock:
                if not _upgrades:
                    _upgrading = False
                    return
                key, lowered, path = _upgrades.pop(0)
            try:
                _adoptable[key] = _optimized(key, lowered, path)
            except Exception:  # the fast build stays in use; the next process compiles afresh
                pass
    t = threading.Thread(target=run, name="backcheck-programs-optimize", daemon=True)
    t.start()
    _threads.append(t)


def _lower_priority() -> None:
    """This thread yields the cores to the work waited for (Linux gives each thread its own nice
    value; elsewhere, and for threads XLA already runs, nothing changes)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _optimized(key, lowered, path):
    build = partial(_compile, None, None, lowered)
    return build() if path is None else _stored_build(path, build)


def _store(path: Path, program) -> None:
    try:
        blob = pickle.dumps(serialize_executable.serialize(program))
        # written whole, then renamed: concurrent xdist workers never read half a file
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            f.write(blob)
        os.replace(f.name, path)
    except Exception:  # not stored: the next process compiles it again
        pass


def prune(folder: Path | None = None, keep: Path | None = None, now: float | None = None) -> list[Path]:
    """Delete what the cache no longer needs (see the module docstring); returns what went.
    Runs after each compile: a run that compiles nothing never touches the folder."""
    folder = folder or cache_dir()
    now = time.time() if now is None else now
    if folder is None or not folder.is_dir():
        return []
    files = []
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((p, st.st_mtime, st.st_size))
    newest = {}   # (name, slot) -> mtime of its most recently used build
    for p, mtime, _ in files:
        m = _NAME.match(p.name)
        if m:
            slot = (m["name"], m["slot"])
            newest[slot] = max(newest.get(slot, 0.0), mtime)
    gone, day = [], 86400.0
    for p, mtime, _ in files:
        if p == keep:
            continue
        idle = now - mtime
        if p.suffix in (".tmp", ".lock"):
            stale = idle > 3600   # a crashed writer's leftovers
        else:
            m = _NAME.match(p.name)
            superseded = m is None or newest[(m["name"], m["slot"])] > mtime
            stale = idle > MAX_AGE_DAYS * day or (superseded and idle > SUPERSEDED_DAYS * day)
        if stale and _unlink(p):
            gone.append(p)
    kept = sorted((f for f in files if f[0] not in gone and f[0].suffix == ".bin"), key=lambda f: f[1])
    total = sum(f[2] for f in kept)
    if total > MAX_BYTES:   # least recently used first, down to 3/4 of the limit
        for p, _, size in kept:
            if total <= MAX_BYTES * 3 // 4:
                break
            if p != keep and _unlink(p):
                gone.append(p)
                total -= size
    return gone


def _unlink(p: Path) -> bool:
    try:
        p.unlink()
        return True
    except OSError:
        return False
