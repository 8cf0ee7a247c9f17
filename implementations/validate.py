"""Validation of everything an implementation under test returns, in-process or isolated.

`Validated(impl)` has the protocol's interface and wraps each call so that the plug-in's
problems become a one-line `PluginError` (never a wrong-gradient failure, never a crash of the
harness). The isolation worker wraps the plug-in in the same class, so both paths apply the
same rules:

- raises                    -> "raised ZeroDivisionError: division by zero (at student.py:41)"
- result too big            -> rejected by size before anything else looks at it (a result's size
                               is known from the spec; more than MAX_SIZE_FACTOR times that plus
                               MAX_SIZE_SLACK bytes is "a huge object")
- structure and types       -> (cost, grads): cost a finite real scalar; grads one (W, b) pair of
                               numpy arrays per layer, of the spec's shapes and exactly its dtype
- NaN / inf                 -> "returned NaN in layer 2 W[0,1]"
- mutated inputs            -> the plug-in gets copies; after the call they are compared with the
                               originals (a classic aliasing bug: `gW = W; gW *= ...`)
- non-deterministic         -> the first call of each method and then every DETERMINISM_EVERY-th
                               one is made twice on fresh copies; sampling keeps it cheap (about
                               1/16 extra calls) while still catching state kept between calls,
                               which shows on the first repeat. Results that are not bitwise equal
                               are compared under the error model (see `disagreement`): summing in
                               another order on each call is reassociation, not an error.
                               `recheck_gradients` repeats a call whose result looked wrong, so that
                               a plug-in answering differently on unsampled calls is named
                               non-deterministic rather than blamed for wrong gradients.

Results are returned as fresh plain ndarrays, so a plug-in that later overwrites a buffer it
returned cannot change what the harness holds. Timeouts and crashes need a process boundary
and are handled in `isolation`; in-process there is no timeout.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import sysconfig
import traceback
from collections import Counter

import numpy as np

from implementations.errors import (INVALID, MUTATED, NONDETERMINISTIC, RAISED, TOO_LARGE,
                                    PluginError)
from implementations.protocol import Intermediates
from reference.spec import flatten

MAX_SIZE_FACTOR = 16
MAX_SIZE_SLACK = 1 << 20  # bytes: room for Python object overhead on tiny networks
DETERMINISM_EVERY = 16


# --- what a plug-in returned ---------------------------------------------------------------

def approx_size(x, budget: int, _depth: int = 0) -> int:
    """Rough size in bytes of a returned object; stops counting once past `budget`, so a
    list of ten million entries costs no more to reject than a short one."""
    if isinstance(x, np.ndarray):
        return x.nbytes
    if isinstance(x, (list, tuple)) and _depth < 6:
        total = sys.getsizeof(x)
        for item in x:
            total += approx_size(item, budget, _depth + 1)
            if total > budget:
                break
        return total
    if isinstance(x, Intermediates) and _depth < 6:
        return sum(approx_size(v, budget, _depth + 1) for v in vars(x).values())
    try:
        return int(getattr(x, "nbytes", None) or sys.getsizeof(x))
    except Exception:
        return 0


def size_budget(nbytes_expected: int) -> int:
    return MAX_SIZE_FACTOR * nbytes_expected + MAX_SIZE_SLACK


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _type_name(x) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"


def _check_size(err, result, expected: int) -> None:
    budget = size_budget(expected)
    size = approx_size(result, budget)
    if size > budget:
        raise err(f"returned a huge object (over {fmt_bytes(size)}; a result for this network is "
                  f"about {fmt_bytes(expected)})", TOO_LARGE)


def _check_array(err, arr, where: str, shape: tuple, dtype: np.dtype) -> None:
    if not isinstance(arr, np.ndarray):
        raise err(f"{where} is a {_type_name(arr)}, expected a numpy ndarray")
    if arr.shape != shape:
        raise err(f"{where} has shape {arr.shape}, expected {shape}")
    if arr.dtype != dtype:
        raise err(f"{where} has dtype {arr.dtype}, expected {dtype} (the spec's dtype)")


def _finite_copies(err, arrays: list, wheres: list) -> list:
    """Copies of the arrays (views into one fresh buffer: ours, so later writes by the plug-in
    cannot reach them), after checking that every entry is finite."""
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    if not np.isfinite(flat).all():
        for arr, where in zip(arrays, wheres):
            finite = np.isfinite(arr)
            if not finite.all():
                idx = tuple(int(i) for i in np.argwhere(~finite)[0])
                what = "NaN" if np.isnan(arr[idx]) else "inf"
                raise err(f"returned {what} in {where}[{','.join(map(str, idx))}]")
    out, offset = [], 0
    for arr in arrays:
        out.append(flat[offset:offset + arr.size].reshape(arr.shape))
        offset += arr.size
    return out


def _check_cost(err, cost) -> float:
    if isinstance(cost, np.ndarray) and cost.ndim == 0:
        cost = cost[()]
    if isinstance(cost, bool) or not isinstance(cost, (numbers.Real, np.floating, np.integer)):
        shape = f" of shape {cost.shape}" if hasattr(cost, "shape") else ""
        raise err(f"cost is a {_type_name(cost)}{shape}, expected a real scalar")
    value = float(cost)
    if not math.isfinite(value):
        raise err(f"returned {'NaN' if math.isnan(value) else 'inf'} as the cost")
    return value


def _pair_list(err, seq, what: str, n: int) -> list:
    if not isinstance(seq, (list, tuple)):
        raise err(f"{what} is a {_type_name(seq)}, expected a list with one entry per layer")
    if len(seq) != n:
        raise err(f"returned {what} for {len(seq)} layer{'' if len(seq) == 1 else 's'}, the network has {n}")
    return list(seq)


def check_gradients(err, spec, X, result):
    """(cost, grads) validated and copied; `err(problem, kind)` builds the PluginError."""
    dtype = np.dtype(spec.dtype)
    _check_size(err, result, spec.n_params * dtype.itemsize)
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise err(f"returned a {_type_name(result)}, expected a (cost, grads) pair")
    cost, grads = result
    cost = _check_cost(err, cost)
    arrays, wheres = [], []
    for j, (pair, (ws, bs)) in enumerate(zip(_pair_list(err, grads, "grads", spec.depth), spec.shapes()), 1):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise err(f"grads for layer {j} is a {_type_name(pair)}, expected a (W, b) pair")
        for arr, name, shape in ((pair[0], "W", ws), (pair[1], "b", bs)):
            _check_array(err, arr, f"layer {j} {name}", shape, dtype)
            arrays.append(arr), wheres.append(f"layer {j} {name}")
    out = _finite_copies(err, arrays, wheres)
    return cost, list(zip(out[0::2], out[1::2]))


def check_intermediates(err, spec, X, result) -> Intermediates:
    dtype, n = np.dtype(spec.dtype), X.shape[0]
    rows = [l.rows for l in spec.layers]
    widths = [l.width for l in spec.layers]
    _check_size(err, result, 2 * n * (sum(rows) + sum(widths)) * dtype.itemsize)
    if not all(hasattr(result, f) for f in ("pre_activations", "activations", "deltas")):
        raise err(f"returned a {_type_name(result)}, expected an Intermediates(pre_activations, activations, deltas)")
    arrays, wheres = [], []
    for field, sizes in (("pre_activations", rows), ("activations", widths), ("deltas", rows)):
        seq = _pair_list(err, getattr(result, field), field, spec.depth)
        for j, (a, m) in enumerate(zip(seq, sizes), 1):
            _check_array(err, a, f"layer {j} {field}", (n, m), dtype)
            arrays.append(a), wheres.append(f"layer {j} {field}")
    out = _finite_copies(err, arrays, wheres)
    d = spec.depth
    return Intermediates(out[:d], out[d:2 * d], out[2 * d:])


def check_any(err, spec, X, result):
    """Results the harness checks itself (the perceptron's): only their size is bounded here."""
    _check_size(err, result, X.nbytes + 8 * 1024)
    return result


# --- inputs and repeated calls ------------------------------------------------------------

def copy_inputs(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple)):
        return type(x)(copy_inputs(v) for v in x)
    return x


def _same(a, b) -> bool:
    """Bitwise equality of nested (lists of) arrays / scalars: the cheap test; the path of a
    difference is only worked out (by first_difference) once one is known to exist."""
    if type(a) is np.ndarray:
        return type(b) is np.ndarray and a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, Intermediates):
        return isinstance(b, Intermediates) and _same([a.pre_activations, a.activations, a.deltas],
                                                      [b.pre_activations, b.activations, b.deltas])
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    return a is b or a == b


def first_difference(a, b, where: str = "") -> str | None:
    """Where two nested (lists of) arrays / scalars first differ bitwise ('[1][0][1]'), or None."""
    if _same(a, b):
        return None
    if isinstance(a, Intermediates) and isinstance(b, Intermediates):
        return first_difference([a.pre_activations, a.activations, a.deltas],
                                [b.pre_activations, b.activations, b.deltas], where)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b)):
            if not _same(u, v):
                return first_difference(u, v, f"{where}[{i}]")
    return where


def _name_gradient_path(path: str) -> str:
    """'[1][0][1]' in (spec, params, X, Y) -> 'params layer 1 b'; '[2]' -> 'X'."""
    idx = [int(p) for p in path.strip("[]").split("][") if p]
    names = {0: "spec", 1: "params", 2: "X", 3: "Y"}
    if not idx:
        return "inputs"
    if idx[0] == 1 and len(idx) >= 2:
        return f"params layer {idx[1] + 1}" + (f" {'Wb'[idx[2]]}" if len(idx) >= 3 else "")
    return names.get(idx[0], f"argument {idx[0] + 1}")


_LIBRARY_DIRS = tuple(os.path.realpath(p) for p in {
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
_OUR_DIR = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))


def describe_exception(e: BaseException) -> str:
    """'ValueError: bad thing (at student.py:41)': one line, located in the plug-in's code where
    possible (the innermost frame outside the standard library and installed packages)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = msg if len(msg) <= 200 else msg[:197] + "..."
    frames = traceback.extract_tb(e.__traceback__)
    own = [f for f in frames if not os.path.realpath(f.filename).startswith(_LIBRARY_DIRS)
           and not os.path.realpath(f.filename).startswith(_OUR_DIR + os.sep)]
    frame = (own or frames or [None])[-1]
    at = f" (at {os.path.basename(frame.filename)}:{frame.lineno})" if frame else ""
    if isinstance(e, SystemExit):
        return f"called sys.exit({e.code!r}){at}"
    return f"raised {type(e).__name__}{': ' + msg if msg else ''}{at}"


# --- two results of one call: reassociation or non-determinism ------------------------------
# A correct implementation may sum in another order on each call (a scalar autodiff engine
# walking a set of children, a threaded BLAS), so its two results can differ by rounding. Each
# is within the error model's bound tol of the exact value, hence within 2 tol of the other:
# only a difference beyond that is non-determinism. The error model is imported only once two
# results differ: it imports the NumPy backprop, which a plug-in worker otherwise never loads.

REPEATS = 2  # two roundings of one computation


def disagreement(call: str, args, first, again) -> str | None:
    """None when two results of `call` (gradients or intermediates) on the same args are bitwise
    equal or within REPEATS times the error model's per-entry bound; else the problem, naming
    the field of the entry furthest over its bound, with that entry's difference and bound."""
    if _same(first, again):
        return None
    worst = None
    with np.errstate(over="ignore"):
        for where, a, b, bound in _bounded_fields(call, args, first, again):
            diff = np.abs(a - b)
            over = diff / bound
            i = int(np.argmax(over)) if over.size else 0
            if over.size and over[i] > 1 and (worst is None or over[i] > worst[0]):
                worst = (over[i], where, diff[i], bound[i])
    if worst is None:
        return None
    _, where, diff, bound = worst
    return (f"non-deterministic implementation: two identical calls returned different {where} "
            f"(max difference {diff:.3g}, over the reassociation bound {bound:.3g})")


def _bounded_fields(call, args, first, again):
    """(name, first's entries, again's entries, bound on their difference) per result field, in
    float64. Gradients may be given as (W, b) pairs or flat in reference.spec.flatten order."""
    from properties import errormodel
    spec, params, X, Y = args
    m = errormodel.model(spec, params, X, Y, spec.dtype)
    if call == "intermediates":
        for field, tols in zip(("pre_activations", "activations", "deltas"), (m.z_err, m.h_err, m.delta_tol)):
            for j, (a, b, t) in enumerate(zip(getattr(first, field), getattr(again, field), tols), 1):
                yield f"layer {j} {field}", _flat64(a), _flat64(b), REPEATS * t.ravel()
        return
    (c1, g1), (c2, g2) = first, again
    yield "cost", np.array([float(c1)]), np.array([float(c2)]), np.array([REPEATS * m.cost_tol])
    a, b, offset = _flat64(g1), _flat64(g2), 0
    for j, shapes in enumerate(spec.shapes(), 1):
        for name, shape in zip("Wb", shapes):
            part = slice(offset, offset + math.prod(shape))
            offset = part.stop
            yield f"layer {j} {name}", a[part], b[part], REPEATS * m.tol[part]


def _flat64(x) -> np.ndarray:
    return np.ravel(np.asarray(x, np.float64)) if isinstance(x, np.ndarray) else flatten(x).astype(np.float64)


def recheck(name: str, gradients, spec, params, X, Y, first) -> PluginError | None:
    """Both wrappers' recheck_gradients: `gradients` (the wrapper's validated call) once more on
    the same inputs. The NONDETERMINISTIC PluginError when its result differs from `first` (the
    (cost, grads) the harness got; grads as pairs or flat) beyond the error model's bound; a
    PluginError of the second call as it is; None when the two agree."""
    try:
        again = gradients(spec, params, X, Y)
    except PluginError as e:
        return e
    problem = disagreement("gradients", (spec, params, X, Y), first, again)
    return None if problem is None else PluginError(name, "gradients", problem, NONDETERMINISTIC)


# --- the wrapper ----------------------------------------------------------------------------

class Pending:
    """A call started with submit_gradients(): result() returns its value or raises its
    PluginError. In-process it is already done; isolated, it waits for the worker."""

    def __init__(self, wait=None, value=None):
        self._wait, self._value = wait, value  # wait(): makes the owner call resolve()

    def resolve(self, value) -> None:
        self._wait, self._value = None, value

    def done(self) -> bool:
        return self._wait is None

    def result(self):
        if self._wait is not None:
            self._wait()
        if isinstance(self._value, PluginError):
            raise self._value
        return self._value


_CHECKS = {"gradients": check_gradients, "intermediates": check_intermediates, "perceptron": check_any}


class Validated:
    """An implementation whose every call is validated (see the module docstring)."""

    def __init__(self, impl, source: str | None = None):
        self.impl = impl
        self.source = source  # how it was named (--impl), for reproducers
        self.name = str(impl.name)
        self.capabilities = impl.capabilities
        self._calls: Counter = Counter()
        # expose the optional methods only where declared, so hasattr() tells the harness
        if self.capabilities.intermediates:
            self.intermediates = lambda spec, params, X, Y: self.call("intermediates", spec, params, X, Y)
        if self.capabilities.perceptron:
            self.perceptron = lambda X, y, max_epochs: self.call("perceptron", X, y, max_epochs)

    def __repr__(self):
        return f"Validated({self.name!r})"

    def gradients(self, spec, params, X, Y):
        return self.call("gradients", spec, params, X, Y)

    def gradients_many(self, cases) -> list:
        """[(cost, grads) or PluginError] for a list of (spec, params, X, Y): one bad case does
        not stop the others (same contract as IsolatedImplementation.gradients_many)."""
        return self.call_many("gradients", cases)

    def submit_gradients(self, spec, params, X, Y) -> Pending:
        """Same contract as IsolatedImplementation.submit_gradients; here the call is made now."""
        return Pending(value=self.call_many("gradients", [(spec, params, X, Y)])[0])

    def call_many(self, call: str, cases) -> list:
        out = []
        for args in cases:
            try:
                out.append(self.call(call, *args))
            except PluginError as e:
                out.append(e)
        return out

    def call(self, call: str, *args):
        """Call the plug-in's method on copies of args and validate what comes back."""
        def err(problem, kind=INVALID):
            return PluginError(self.name, call, problem, kind)

        if call == "perceptron":
            spec, X = None, args[0]
        else:
            spec, X = args[0], args[2]
        method = getattr(self.impl, call)
        given = copy_inputs(args)
        result = _call(method, given, err)
        if not _same(args, given):
            changed = first_difference(list(args), list(given))
            what = _name_gradient_path(changed) if call != "perceptron" else {"[0]": "X", "[1]": "y"}.get(changed, "inputs")
            raise err(f"mutated its input {what} (inputs must be left as they were; "
                      "look for an in-place update of an array that aliases an input)", MUTATED)
        out = _CHECKS[call](err, spec, X, result)
        n = self._calls[call]
        self._calls[call] += 1
        if call != "perceptron" and n % DETERMINISM_EVERY == 0:
            again = _CHECKS[call](err, spec, X, _call(method, copy_inputs(args), err))
            problem = disagreement(call, args, out, again)
            if problem is not None:
                raise err(problem, NONDETERMINISTIC)
        return out  # the first of two results that agree: the harness sees the plug-in's first answer

    def recheck_gradients(self, spec, params, X, Y, first) -> PluginError | None:
        """Called by the checks when `first` looked wrong: one more call on the same inputs, so a
        plug-in answering identical calls differently is named non-deterministic, not blamed
        for wrong gradients (see `recheck`)."""
        return recheck(self.name, self.gradients, spec, params, X, Y, first)


def _call(method, args, err):
    try:
        return method(*args)
    except (Exception, SystemExit) as e:  # SystemExit too: sys.exit() in a plug-in must not end the run
        raise err(describe_exception(e), RAISED) from None
