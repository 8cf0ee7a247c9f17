"""Compiled reference programs, kept in memory and on disk as XLA executables.

Every shape bucket needs its own executable for each entry point of the reference (gradient,
batched perturbations, directional costs). JAX's persistent compilation cache saves only XLA's
compile: a new process still traces and lowers every program before it can look one up, about
a second each here (the scan over layers, the switches over activations and losses, their
gradient), and each pytest-xdist worker pays that again for every bucket it meets. So the
executable itself is stored, keyed by the program's name, its argument shapes and everything
it depends on (this package's source, the jax and jaxlib versions, XLA_FLAGS, the CPU), and a
later process loads it in about 0.1 s. A file that fails to load is recompiled and replaced;
one that cannot be written only costs the next process a compile.

It replaces JAX's persistent compilation cache for these programs. It lives in
`$BACKCHECK_JAX_CACHE/executables` (default ~/.cache/backcheck/jax); BACKCHECK_JAX_CACHE=off
turns it off.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import platform
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import jax
import jaxlib
from jax.experimental import serialize_executable

_HERE = Path(__file__).resolve().parent
_SOURCES = ("jax_ref.py", "activations.py", "spec.py", "programs.py")  # what the programs are built from
_programs: dict = {}
_lock = threading.Lock()
stats = {"loaded": 0, "compiled": 0}   # how this process got its programs


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
    for part in (jax.__version__, jaxlib.__version__, platform.python_version(), platform.machine(), _cpu(),
                 os.environ.get("XLA_FLAGS", ""), str(jax.config.jax_enable_x64)):
        h.update(part.encode() + b"\0")
    for name in _SOURCES:
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()


def _signature(name: str, args) -> tuple:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return (name, str(tree)) + tuple((tuple(getattr(a, "shape", ())), str(getattr(a, "dtype", type(a))))
                                     for a in leaves)


def compiled(key: tuple, fn, args: tuple):
    """The executable of `fn` for arguments shaped like `args`: from memory, else from disk,
    else compiled (and stored). `key` (the program's name first) must determine the shapes
    and dtypes of `args`: it is the cheap in-memory key (the full signature costs ~0.1 ms)."""
    program = _programs.get(key)
    if program is None:
        with _lock:
            program = _programs.get(key) or _load_or_compile(key[0], fn, args, _signature(key[0], args))
            _programs[key] = program
    return program


def count() -> int:
    """Programs this process holds (each bucket costs one per entry point)."""
    return len(_programs)


def _load_or_compile(name, fn, args, sig):
    folder = cache_dir()
    path = None
    if folder is not None:
        digest = hashlib.sha256((_environment_key() + repr(sig)).encode()).hexdigest()[:32]
        path = folder / f"{name}-{digest}.bin"
        try:
            payload, in_tree, out_tree = pickle.loads(path.read_bytes())
            program = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
            stats["loaded"] += 1
            return program
        except Exception:  # missing, truncated, or from an incompatible build: compile it anew
            pass
    # compiled afresh, never taken from JAX's own persistent cache (if a user turned it on):
    # an executable JAX loaded from there serializes without its code ("Function ... not found"
    # when the copy runs)
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        program = jax.jit(fn).trace(*args).lower().compile()
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
    stats["compiled"] += 1
    if path is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            blob = pickle.dumps(serialize_executable.serialize(program))
            # written whole, then renamed: concurrent xdist workers never read half a file
            with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as f:
                f.write(blob)
            os.replace(f.name, path)
        except Exception:
            pass
    return program
