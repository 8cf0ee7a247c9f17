"""Running an implementation under test in a worker process.

`IsolatedImplementation(source)` has the protocol's interface (name, capabilities, gradients,
and intermediates / perceptron where declared) but the plug-in lives in a worker process that
imports it by its source string. The worker wraps it in `validate.Validated`, so results are
checked there and only validated plain data comes back; on top of that the process boundary
catches what in-process validation cannot:

- a call that does not return within `timeout` seconds: the worker is killed, the call is an
  error of kind "timeout", and the next call starts a new worker;
- a worker that dies (os._exit, a segfault, the OOM killer): an error of kind "crashed", and
  the next call starts a new worker;
- a reply bigger than MAX_MESSAGE_BYTES is refused by the worker before it is sent;
- a worker grown past RECYCLE_BYTES resident (looked at between calls, at most every RSS_EVERY
  seconds; Linux) is replaced by a fresh one before the next call, which is no error. A plug-in
  that keeps one compiled program per network, as `jax.jit` does, grows by ~4.5 MB a network
  (tests/zoo/jax_user.py: 2.8 GB after 600), and the thorough profile draws thousands: two such
  workers died of SIGSEGV inside the unwinder (libgcc_s) after 500-850 s, reported as the
  plug-in's crash, which a fresh run of the same case did not reproduce.

After GIVE_UP_AFTER crashes or timeouts in a row, later calls fail at once instead of paying
a timeout each, so a hanging plug-in cannot stall the rest of the run; their message keeps the
first failure's cause ("timed out after 2 s", "exited with code 3", "killed by signal SIGKILL").

Workers are fresh interpreters (exec, never fork: see _Process). Batches: `gradients_many(cases)`
sends many cases in one message; replies come back in chunks (see _Replies), and the per-call
timeout still applies to each case. Arrays travel as raw buffers, not pickled one by one.
POSIX only (socketpair + pass_fds). Overhead: benchmarks/bench_isolation.py.

This guards against buggy code (crashes, hangs, junk), not malicious code: the worker runs as
the same user, and its replies are unpickled by the harness.
"""
from __future__ import annotations

import functools
import math
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import Connection

import numpy as np

from implementations.errors import CRASHED, TIMEOUT, TOO_LARGE, LoadError, PluginError
from implementations.protocol import Capabilities
from implementations.validate import Pending, recheck

DEFAULT_TIMEOUT = 30.0       # seconds per call
LOAD_TIMEOUT = 120.0         # importing the plug-in in a fresh interpreter (it may import jax, torch...)
MAX_MESSAGE_BYTES = 64 << 20
GIVE_UP_AFTER = 3
RECYCLE_BYTES = 2 << 30      # a worker's resident size past which it is replaced between calls
RSS_EVERY = 1.0              # seconds between looks at it (a look costs ~20 us)
FLUSH_EVERY = 0.005          # seconds of work per reply message in a batch
SLOW_CASE = 0.1              # seconds after which the worker says which case is running
CALLS = ("gradients", "intermediates", "perceptron")

# The worker is a fresh interpreter started by exec, never a fork: JAX's runtime (threads, XLA
# state) in the harness is not fork-safe. Unlike multiprocessing's spawn it does not re-import
# the harness's __main__, so a script calling load(..., isolate=True) needs no main guard.
_BOOT = "import sys; from implementations.isolation import _worker_main; _worker_main(*sys.argv[1:])"


class _Process:
    """A worker interpreter and the connection to it."""

    def __init__(self, source: str, max_bytes: int):
        parent, child = socket.socketpair()
        # the worker imports with the harness's path (so plug-ins and entry points resolve alike)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.popen = subprocess.Popen([sys.executable, "-c", _BOOT, str(child.fileno()), source, str(max_bytes)],
                                          pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        self.conn = Connection(parent.detach())
        self.pid = self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.is_alive():
            self.popen.kill()  # SIGKILL: a worker stuck in C code may ignore SIGTERM

    def join(self, timeout: float):
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self):
        return self.popen.poll()


def _worker_main(fd: str, source: str, max_bytes: str) -> None:
    _worker(Connection(int(fd)), source, int(max_bytes))


# --- the wire format -------------------------------------------------------------------------
# Pickling a small ndarray costs ~10 us, about as much as a small network's backprop, so the
# arrays of a case (and of a gradients reply) travel as one raw buffer plus a header.

_DTYPES: dict = {}  # dtype str <-> np.dtype, both ways, so the hot path parses no strings


def _dtype(key):
    got = _DTYPES.get(key)
    if got is None:
        dt = np.dtype(key)
        got = _DTYPES[key] = dt if isinstance(key, str) else dt.str
    return got


def _pack(arrays) -> tuple[tuple, bytes]:
    return tuple([(_dtype(a.dtype), a.shape) for a in arrays]), b"".join([a.tobytes() for a in arrays])


def _unpack(header, blob) -> list:
    out, offset = [], 0
    for dtype, shape in header:
        dtype, count = _dtype(dtype), math.prod(shape)
        out.append(np.frombuffer(blob, dtype, count, offset).reshape(shape))
        offset += count * dtype.itemsize
    return out


def _pack_same(arrays) -> tuple[str, tuple, bytes]:
    """Arrays of one dtype (validated gradients): the dtype once, then shapes and data."""
    return _dtype(arrays[0].dtype), tuple([a.shape for a in arrays]), b"".join([a.tobytes() for a in arrays])


def _unpack_same(dtype, shapes, blob) -> list:
    flat, out, offset = np.frombuffer(blob, _dtype(dtype)), [], 0
    for shape in shapes:
        count = math.prod(shape)
        out.append(flat[offset:offset + count].reshape(shape))
        offset += count
    return out


def _encode_spec(spec) -> tuple:
    return (spec.n_in, tuple([(l.width, l.activation, l.alpha, l.pieces) for l in spec.layers]),
            spec.loss, spec.l2, spec.dtype)


def _decode_spec(t):
    from reference.spec import Layer, NetworkSpec
    n_in, layers, loss, l2, dtype = t
    return NetworkSpec(n_in, tuple([Layer(*l) for l in layers]), loss, l2, dtype)


def _encode_case(call: str, args) -> tuple:
    if call in ("gradients", "intermediates") and len(args) == 4:
        spec, params, X, Y = args
        arrays = [a for pair in params for a in pair] + [X, Y]
        if all([type(a) is np.ndarray for a in arrays]):
            return ("packed", _encode_spec(spec), *_pack(arrays))
    return ("pickled", args)


def _decode_case(item) -> tuple:
    if item[0] == "pickled":
        return item[1]
    _, spec, header, blob = item
    arrays = _unpack(header, blob)  # read-only views: Validated hands the plug-in copies
    return _decode_spec(spec), list(zip(arrays[:-2:2], arrays[1:-2:2])), arrays[-2], arrays[-1]


# --- the worker process --------------------------------------------------------------------

def _worker(conn, source: str, max_bytes: int) -> None:
    from implementations.registry import resolve_checked
    from implementations.validate import Validated, describe_exception, fmt_bytes

    try:
        impl = Validated(resolve_checked(source), source)
        caps = impl.capabilities
        conn.send(("ready", impl.name, pickle.dumps(caps), caps.to_dict()))
    except PluginError as e:
        conn.send(("load_error", e))
        return
    except BaseException as e:  # noqa: BLE001 - anything the plug-in's import does is its problem
        conn.send(("load_error", LoadError(source, describe_exception(e))))
        return
    out = _Replies(conn)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the harness has gone: nothing left to do
            return
        if msg is None:
            return
        call, cases, strict = msg
        for i, item in enumerate(cases):
            out.start(i)
            try:
                got = impl.call(call, *_decode_case(item))
                # gradients (the hot path) travel as one raw buffer; the rest as pickles
                reply = ("g", got[0], *_pack_same([a for pair in got[1] for a in pair])) if call == "gradients" \
                    else ("ok", got)
            except PluginError as e:
                reply = ("err", e)
            try:
                data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # e.g. a perceptron result holding a lambda
                data = pickle.dumps(("err", PluginError(
                    impl.name, call, f"returned an object that cannot be sent back ({describe_exception(e)})")))
            if len(data) > max_bytes:
                data = pickle.dumps(("err", PluginError(
                    impl.name, call, f"returned a huge object ({fmt_bytes(len(data))} pickled, "
                                     f"over the {fmt_bytes(max_bytes)} limit)", TOO_LARGE)))
            out.add(data, flush=strict)
        out.start(None)
        out.flush()


class _Replies:
    """The worker's outbox. Replies go out in chunks, one message per FLUSH_EVERY seconds of work
    rather than one per case (each message wakes the harness: on a small machine that costs
    about as much as the message). A watchdog thread sends what is buffered, then ("running", i),
    once case i has run for SLOW_CASE seconds, so that when the harness times out it knows
    which case hung. Without that word (a hang holding the GIL, or a crash) it cannot be sure,
    and reruns the rest one reply per message (strict)."""

    def __init__(self, conn):
        self.conn, self.lock, self.buf = conn, threading.Lock(), []
        self.current, self.started, self.seq, self.announced = None, 0.0, 0, -1
        self.last_flush = 0.0  # the first reply goes out at once
        threading.Thread(target=self._watch, name="backcheck-watchdog", daemon=True).start()

    def start(self, i) -> None:
        with self.lock:
            self.current, self.started, self.seq = i, time.monotonic(), self.seq + 1

    def add(self, data: bytes, flush: bool) -> None:
        with self.lock:
            self.buf.append(data)
            if flush or time.monotonic() - self.last_flush >= FLUSH_EVERY:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            self.conn.send_bytes(pickle.dumps(("replies", self.buf), protocol=pickle.HIGHEST_PROTOCOL))
            self.buf = []
        self.last_flush = time.monotonic()

    def _watch(self) -> None:
        while True:
            time.sleep(SLOW_CASE / 2)
            with self.lock:
                if self.current is not None and self.announced != self.seq \
                        and time.monotonic() - self.started >= SLOW_CASE:
                    self._flush()
                    self.conn.send_bytes(pickle.dumps(("running", self.current)))
                    self.announced = self.seq


# --- the proxy in the harness -------------------------------------------------------------

_UNSURE = object()


def _exit_text(code) -> str:
    if code is None:
        return "it did not exit"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _cause(code) -> str:
    """A dead worker's exit as the cause of a failure: 'exited with code 3', 'killed by signal SIGKILL'."""
    text = _exit_text(code)
    return f"exited with code {code}" if text.startswith("exit code") else text


def _resident_bytes(pid: int) -> int | None:
    """A process's resident size from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _capabilities(pickled: bytes, as_dict: dict) -> Capabilities:
    # A Capabilities subclass defined inside a plug-in file cannot be unpickled here; fall
    # back to the base class with the same declared fields.
    try:
        caps = pickle.loads(pickled)
        if isinstance(caps, Capabilities):
            return caps
    except Exception:
        pass
    fields = Capabilities.__dataclass_fields__
    return Capabilities(**{k: v for k, v in as_dict.items() if k in fields})


def _shutdown(handle: list) -> None:
    proc = handle[0]
    handle[0] = None
    if proc is not None:
        try:
            proc.conn.send(None)  # ask it to stop; kill it if it does not
        except Exception:
            pass
        proc.join(0.5)
        proc.kill()
        proc.join(5)
        proc.conn.close()


class IsolatedImplementation:
    """A plug-in run in a spawned worker process (see the module docstring). Raises LoadError
    if the worker cannot load it."""

    def __init__(self, source: str, timeout: float = DEFAULT_TIMEOUT, load_timeout: float | None = None):
        self.source = source
        self.timeout = float(timeout)
        self.load_timeout = float(load_timeout or max(LOAD_TIMEOUT, self.timeout))
        self._lock = threading.RLock()
        self._handle = [None]  # [_Process], shared with the finalizer
        self._finalizer = weakref.finalize(self, _shutdown, self._handle)
        self._streak: list = []      # (kind, cause) of the crashes / timeouts in a row
        self._inbox: deque = deque()  # replies received and not yet handed out
        self._running = None         # the case the worker last said was running long
        self._inflight = None        # submit_gradients: the call in flight
        self._gave_up: PluginError | None = None
        self.restarts = 0            # workers started after the first, for any reason
        self.recycled = 0            # ... of them because the last one had grown past RECYCLE_BYTES
        self._last_look = -math.inf
        self.name, self.capabilities = source, None
        self.name, self.capabilities = self._start()
        if self.capabilities.intermediates:
            self.intermediates = functools.partial(self._one, "intermediates")
        if self.capabilities.perceptron:
            self.perceptron = functools.partial(self._one, "perceptron")

    def __repr__(self):
        return f"IsolatedImplementation({self.source!r}, name={self.name!r})"

    # the protocol
    def gradients(self, spec, params, X, Y):
        return self._one("gradients", spec, params, X, Y)

    def recheck_gradients(self, spec, params, X, Y, first) -> PluginError | None:
        """Same contract as validate.Validated.recheck_gradients: the worker is called once more,
        and the two results are compared here, under the error model."""
        return recheck(self.name, self.gradients, spec, params, X, Y, first)

    def gradients_many(self, cases) -> list:
        """[(cost, grads) or PluginError] for a list of (spec, params, X, Y), in one round trip
        (more only after a crash or timeout); one bad case does not stop the others."""
        return self.call_many("gradients", cases)

    def submit_gradients(self, spec, params, X, Y) -> Pending:
        """Start one gradients call and return at once; .result() waits for it. The harness can
        compute its references meanwhile, so the worker's time is hidden instead of added. One
        call is in flight at a time: any other use of the proxy collects it first."""
        with self._lock:
            self._settle()
            pending = Pending(self._settle_locked)
            err = self._gave_up or self._send("gradients", [_encode_case("gradients", (spec, params, X, Y))], True)
            if err is not None:
                return Pending(value=PluginError(self.name, "gradients", err.problem, err.kind))
            self._inflight = pending
            return pending

    def _settle_locked(self) -> None:
        with self._lock:
            self._settle()

    def _settle(self) -> None:
        """Receive the reply of the submitted call in flight, if any (lock held)."""
        pending, self._inflight = self._inflight, None
        if pending is not None:
            reply = self._receive("gradients", 0, True)
            if not (isinstance(reply, PluginError) and reply.kind in (TIMEOUT, CRASHED)):
                self._streak.clear()
            pending.resolve(reply)

    def close(self) -> None:
        with self._lock:
            pending, self._inflight = self._inflight, None
            if pending is not None:
                pending.resolve(PluginError(self.name, "gradients", "not completed: the implementation was closed",
                                            CRASHED))
            _shutdown(self._handle)

    # plumbing
    def _one(self, call, *args):
        out = self.call_many(call, [args])[0]
        if isinstance(out, PluginError):
            raise out
        return out

    def call_many(self, call: str, cases) -> list:
        if call not in CALLS or (call != "gradients" and not getattr(self.capabilities, call)):
            raise ValueError(f"{call!r} is not a call {self.name!r} declares")
        cases, out = [_encode_case(call, args) for args in cases], []
        strict = False  # after an uncertain failure: one reply per message, so blame is exact
        with self._lock:
            self._settle()
            while len(out) < len(cases):
                pending = cases[len(out):]
                if self._gave_up is not None:
                    out += [PluginError(self.name, call, self._gave_up.problem, self._gave_up.kind)] * len(pending)
                    break
                err = self._send(call, pending, strict)
                if err is not None:
                    out.append(err)
                    continue
                for i in range(len(pending)):
                    reply = self._receive(call, i, strict or i == len(pending) - 1)
                    if reply is _UNSURE:
                        strict = True  # some replies were lost with the worker: rerun from here
                        break
                    out.append(reply)
                    if isinstance(reply, PluginError) and reply.kind in (TIMEOUT, CRASHED):
                        break  # the worker is gone: resend the rest to a new one
                    self._streak.clear()
        return out

    def _start(self):
        proc = _Process(self.source, MAX_MESSAGE_BYTES)
        parent = proc.conn
        self._handle[0] = proc
        poller = select.poll()  # one per worker: Connection.poll() builds a selector per call
        poller.register(parent.fileno(), select.POLLIN)
        self._ready = lambda timeout: bool(poller.poll(timeout * 1000))
        try:
            if not parent.poll(self.load_timeout):
                self._kill()
                raise LoadError(self.source, f"timed out after {self.load_timeout:g} s while loading", TIMEOUT)
            msg = parent.recv()
        except (EOFError, OSError):
            raise LoadError(self.source, f"the worker process died while loading it "
                                         f"({_exit_text(self._reap())})", CRASHED) from None
        if msg[0] == "load_error":
            self._reap()
            raise msg[1]
        _, name, caps_pickled, caps_dict = msg
        return name, _capabilities(caps_pickled, caps_dict)

    def _send(self, call, cases, strict: bool) -> PluginError | None:
        """Send a batch to a live worker, starting one if needed. None when sent, else the
        error that the first case gets."""
        self._inbox.clear()
        self._running = None
        self._recycle_if_grown()
        for _ in range(2):
            proc = self._handle[0]
            if proc is None or not proc.is_alive():
                if proc is not None:
                    self._reap()
                try:
                    self._start()
                    self.restarts += 1
                except LoadError as e:
                    self._gave_up = PluginError(self.name, call, "not called: its worker could not be "
                                                                 f"restarted: {e.problem}", e.kind)
                    return self._gave_up
            try:
                self._handle[0].conn.send((call, cases, strict))
                return None
            except (OSError, ValueError):  # died between calls: one fresh worker, then give up
                self._reap()
        return self._failed(call, CRASHED, "crashed: the worker process died before it read the call",
                            "died before it read the call")

    def _recycle_if_grown(self) -> None:
        """Between calls: stop a worker grown past RECYCLE_BYTES, so _send starts a fresh one."""
        now = time.monotonic()
        proc = self._handle[0]
        if proc is None or now - self._last_look < RSS_EVERY:
            return
        self._last_look = now
        size = _resident_bytes(proc.pid)
        if size is not None and size > RECYCLE_BYTES:
            _shutdown(self._handle)
            self.recycled += 1

    def _receive(self, call, i: int, sure: bool):
        """The reply to case i of the batch in flight, a PluginError for a timeout or crash that
        is surely case i's, or _UNSURE when the worker may have died holding replies to earlier
        cases. `sure`: no reply can be missing (strict mode, or i is the batch's last case)."""
        conn = self._handle[0].conn
        try:
            while not self._inbox:
                if not self._ready(self.timeout):
                    self._kill()
                    if not (sure or self._running == i):
                        return _UNSURE
                    return self._failed(call, TIMEOUT, f"timed out: no result within {self.timeout:g} s "
                                                       "(the worker was stopped; the next call gets a new one)",
                                        f"timed out after {self.timeout:g} s")
                kind, payload = pickle.loads(conn.recv_bytes())
                if kind == "running":
                    self._running = payload
                else:
                    self._inbox.extend(payload)
        except (EOFError, OSError):
            code = self._reap()
            if not (sure or self._running == i):
                return _UNSURE
            return self._failed(call, CRASHED, f"crashed: the worker process died ({_exit_text(code)})", _cause(code))
        reply = pickle.loads(self._inbox.popleft())
        if reply[0] == "g":  # validated in the worker; bytearray: the harness gets writable arrays
            arrays = _unpack_same(reply[2], reply[3], bytearray(reply[4]))
            return reply[1], list(zip(arrays[0::2], arrays[1::2]))
        return reply[1]

    def _failed(self, call, kind, problem, cause: str) -> PluginError:
        """A timeout or crash of the call in flight; `cause` says it in a few words, for the
        message of the calls not made once GIVE_UP_AFTER of them came in a row."""
        self._streak.append((kind, cause))
        if len(self._streak) >= GIVE_UP_AFTER and self._gave_up is None:
            kinds = {k for k, _ in self._streak}
            what = (f"timed out after {self.timeout:g} s" if kinds == {TIMEOUT} else
                    "crashed" if kinds == {CRASHED} else "crashed or hung")
            self._gave_up = PluginError(self.name, call, f"not called: the implementation {what} on "
                                                         f"{len(self._streak)} calls in a row "
                                                         f"(first: {self._streak[0][1]})", kind)
        return PluginError(self.name, call, problem, kind)

    def _reap(self):
        """Wait for a dead (or dying) worker, forget it, and return its exit code."""
        proc = self._handle[0]
        self._handle[0] = None
        if proc is None:
            return None
        proc.conn.close()
        proc.join(5)
        proc.kill()
        proc.join(5)
        return proc.exitcode

    def _kill(self):
        if self._handle[0] is not None:
            self._handle[0].kill()
        self._reap()
