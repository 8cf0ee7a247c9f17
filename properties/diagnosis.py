"""Diagnosis: every verdict of one implementation in a run -> what is wrong, where, under which
conditions, in words. Rendered by reports/ (`diagnose(impl, verdicts)`, `Diagnosis.text()`).

How it decides, in order:
  1. The run's gradient verdicts grouped by case: which networks failed, which passed vs_jax
     (the check that compares every entry at the error model's bound; FD checks are looser).
  2. Cases to look at: the run's smallest failing and passing cases rebuilt from their labels,
     and *directed* cases built from the smallest failing one, each changing one thing (λ = 0,
     N = 1, an activation swapped for identity, another loss, the other dtype, an identity
     layer in front, one layer of each activation, wider layers, equal widths): small
     networks, only what the implementation declares (Capabilities.supports), nothing else.
  3. Each case: the implementation's gradient against the JAX reference entry by entry under
     the error model (properties.checks.Context: the same tolerances as check_vs_jax); where
     the implementation exposes its deltas, the first wrong one from the output names the
     layer whose backward step is wrong.
  4. Shapes: candidate wrong gradients, each a classic bug stated generally ("the reference
     with f'(z) missing in layer 1", "dC/db times N", "λW left out", "layers 1 and 2
     exchanged", ...), built from the reference or from the built-in backprop with one factor
     changed. A shape is the answer when the implementation equals it on every case (within
     the error model) and it differs from the reference on the failing ones; the first such
     shape in `candidate_shapes` order (most specific first) wins, and the case count is the confidence.
  5. No shape fits: the conditions decide the category (only one loss fails: loss gradient;
     only networks with a sigmoid layer: that activation's derivative; only λ > 0; ...).

Never a diagnosis for a correct implementation: without a failed or error verdict there is
nothing to explain, and a failure that none of the cases reproduces is left to the verdicts.
Layers are 1-based everywhere.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable

import numpy as np

from implementations.errors import MUTATED, PluginError
from implementations.numpy_mlp import NumpyMLP, activation as _activation
from properties import errormodel
from properties.checks import Case, Context
from reference.rounding import rounding_factor, unit_roundoff
from reference.spec import LOSSES, Layer, NetworkSpec, SpecError, flatten, param_index
from reference.verdict import ERROR, FAILED, PASSED

CATEGORIES = ("activation derivative", "loss gradient", "regularizer", "batch reduction", "layer structure",
              "scale", "single entry", "precision", "input mutation")
ACTIVATION, LOSS, REGULARIZER, BATCH, STRUCTURE, SCALE, SINGLE, PRECISION, MUTATION = CATEGORIES
GRADIENT_CHECKS = ("vs_jax", "vs_fd", "richardson", "slide_fd", "directional", "intermediates")
RUN_CASES = 4          # the run's smallest failing (and passing) cases rebuilt as cases to look at
DIRECTED_N = 4         # batch size of the directed cases (N = 1 has its own)
MIN_EVIDENCE = 2       # a condition is stated on at least this many failing and passing cases


# --- 1. the run's cases ---------------------------------------------------------------------

@dataclass
class RunCase:
    """One case of the run: its network, batch size and label, and what the checks said."""
    spec: NetworkSpec
    n: int
    label: str
    text: str
    failed: bool = False       # a gradient check failed on it
    passed: bool = False       # vs_jax passed on it
    errors: list = field(default_factory=list)   # its error verdicts

    @property
    def size(self) -> tuple:
        return (self.spec.n_params, self.n, self.spec.depth)


def run_cases(verdicts) -> list[RunCase]:
    """The gradient verdicts grouped by case (the case text names label, network and N)."""
    out: dict[str, RunCase] = {}
    for v in verdicts:
        if v.check not in GRADIENT_CHECKS or not v.spec:
            continue
        m = re.search(r"N=(\d+)$", v.case)
        if m is None:
            continue
        label = v.case.partition(": ")[0] if ": " in v.case else ""
        rc = out.get(v.case) or out.setdefault(v.case, RunCase(NetworkSpec.from_dict(v.spec), int(m[1]), label, v.case))
        rc.failed |= v.status == FAILED
        rc.passed |= v.status == PASSED and v.check == "vs_jax"
        if v.status == ERROR:
            rc.errors.append(v)
    return list(out.values())


@lru_cache(maxsize=1)
def _fixed_by_label() -> dict:
    from properties.fixed_cases import fixed_cases
    return {c.label: c for c in fixed_cases().values()}


def rebuild(rc: RunCase) -> Case | None:
    """The run's case itself, from its label: a Hypothesis case from its seed (as
    properties.strategies draws it), a fixed case by name; None for anything else."""
    from properties.strategies import SCALES, params_for, targets
    m = re.fullmatch(r"seed=(\d+) scale=(\w+)( zeros)?", rc.label)
    if m and m[2] in SCALES:
        rng = np.random.default_rng(int(m[1]))
        params = params_for(rc.spec, rng, SCALES[m[2]], bool(m[3]))
        X = rng.standard_normal((rc.n, rc.spec.n_in))
        return Case.make(rc.spec, params, X, targets(rc.spec, rng, rc.n), label=rc.label, direction_seed=int(m[1]))
    fixed = _fixed_by_label().get(rc.label)
    if fixed is not None and fixed.spec == rc.spec and fixed.X.shape[0] == rc.n:
        return fixed
    return None


def fresh_case(spec: NetworkSpec, n: int, seed: int, why: str = "directed") -> Case:
    """New unit-scale parameters and a batch for `spec` (a directed case, labelled by why)."""
    from properties.strategies import params_for, targets
    rng = np.random.default_rng(seed)
    params = params_for(spec, rng, 1.0, False)
    X = rng.standard_normal((n, spec.n_in))
    return Case.make(spec, params, X, targets(spec, rng, n), label=why, direction_seed=seed)


# --- 2. one case, block by block ------------------------------------------------------------

@dataclass
class Probe:
    """One case run on the implementation and compared with the reference entry by entry."""
    case: Case
    why: str                      # "from the run", "λ = 0", "layer 2 tanh → identity", ...
    error: PluginError | None = None
    ctx: Context | None = None
    impl: np.ndarray | None = None     # the implementation's flat gradient (float64)
    tol: np.ndarray | None = None      # per-entry bound: implementation's dtype + float64 reference
    wrong: np.ndarray | None = None    # entries over their bound (kinks and vacuous bounds excluded)
    kinks: np.ndarray | None = None    # entries at a kink: either one-sided derivative is right
    cost_wrong: bool = False

    @property
    def spec(self) -> NetworkSpec:
        return self.case.spec

    @property
    def n(self) -> int:
        return self.case.X.shape[0]

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failed(self) -> bool:
        return self.ok and (self.grads_wrong or self.cost_wrong)

    @property
    def grads_wrong(self) -> bool:
        return self.ok and bool(self.wrong.any())

    @property
    def ref(self) -> np.ndarray:
        return self.ctx.ref.flat

    @property
    def size(self) -> tuple:
        return (self.spec.n_params, self.n, self.spec.depth)

    def float64(self):
        """(params, X, Y) in float64, for the variant backprops."""
        c = self.case
        return [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in c.params], \
            np.asarray(c.X, np.float64), np.asarray(c.Y, np.float64)


def _over(a, b, tol, kinks) -> np.ndarray:
    """Entries over their bound, as reference.compare decides it: kinks and vacuous bounds
    (tol >= half the entries' size) are never wrong."""
    size = np.abs(a) + np.abs(b)
    return (np.abs(a - b) > tol) & ~kinks & (tol < 0.5 * size)


PADDED_WIDTH = 64   # wider networks go to the reference at scale: a padded 1024-wide bucket costs GBs


def probe_context(impl, case: Case, impl_ref: str | None = None) -> Context:
    """The checks' context for a probe: the padded reference for the small networks it serves,
    reference.structured_fd (properties.scale_checks) for real-size ones."""
    if max([case.spec.n_in] + [l.rows for l in case.spec.layers]) > PADDED_WIDTH:
        from properties.scale_checks import ScaleContext
        return ScaleContext(impl, case, impl_ref)
    return Context(impl, case, impl_ref)


def run_probe(impl, case: Case, why: str, impl_ref: str | None = None) -> Probe:
    ctx = probe_context(impl, case, impl_ref)
    try:
        cost, g = ctx.impl_result
    except PluginError as e:
        return Probe(case, why, error=e)
    tol_impl, tol_ref, *_ = ctx.tolerances
    tol = tol_impl + tol_ref
    ref = ctx.ref
    kinks = ctx.kink_entries
    p = Probe(case, why, ctx=ctx, impl=g, tol=tol, wrong=_over(g, ref.flat, tol, kinks), kinks=kinks,
              cost_wrong=bool(abs(cost - ref.cost) > ctx.cost_tolerance))
    # as the checks do: a wrong answer counts only if the implementation gives it again
    if p.failed and ctx.recheck is not None:
        return Probe(case, why, error=ctx.recheck)
    return p


def wrong_deltas(p: Probe) -> list[bool] | None:
    """Per layer, whether the implementation's deltas dC/dz are wrong (None: not exposed, or
    the call failed). The first wrong delta from the output is the layer whose step is wrong."""
    impl = p.ctx.impl
    if not p.ok or not impl.capabilities.intermediates:
        return None
    c = p.case
    try:
        deltas = impl.intermediates(c.spec, c.params, c.X, c.Y).deltas
    except PluginError:
        return None
    *_, dtol_impl, dtol_ref = p.ctx.tolerances
    ref = p.ctx.ref
    other = ref.deltas_other_side or ref.deltas
    return [bool(_over(np.asarray(d, np.float64), r, ti + tr, r != o).any())
            for d, r, o, ti, tr in zip(deltas, ref.deltas, other, dtol_impl, dtol_ref)]


def blocks(spec: NetworkSpec) -> list[tuple[int, str, slice, tuple]]:
    """(layer 1-based, 'W' or 'b', slice of the flat gradient, shape) in flatten order."""
    out, i = [], 0
    for j, (ws, bs) in enumerate(spec.shapes(), start=1):
        for name, shape in (("W", ws), ("b", bs)):
            size = int(np.prod(shape))
            out.append((j, name, slice(i, i + size), shape))
            i += size
    return out


# --- 3. directed cases ----------------------------------------------------------------------

def _out_width(loss: str, width: int) -> int:
    from properties.strategies import _OUT_WIDTH   # the output widths the suite draws per loss
    lo, hi = _OUT_WIDTH[loss]
    return min(max(width, lo), hi)


def _with_layer(spec, j, layer):
    return spec.with_(layers=spec.layers[:j - 1] + (layer,) + spec.layers[j:])


def _act(layer: Layer) -> str:
    return layer.describe().partition(":")[2]


def directed_specs(spec: NetworkSpec, n: int) -> list[tuple[str, NetworkSpec, int]]:
    """(why, network, N): the smallest failing network with one thing changed."""
    out = []

    def add(why, make, k=n):
        try:
            out.append((why, make(), k))
        except SpecError:   # e.g. a loss the output layer's activation cannot serve
            pass
    add("new data", lambda: spec)
    add(*(("N = 1", lambda: spec, 1) if n > 1 else ("N = 4", lambda: spec, DIRECTED_N)))
    add(*(("λ = 0", lambda: spec.with_(l2=0.0)) if spec.l2 else ("λ = 0.1", lambda: spec.with_(l2=0.1))))
    other = "float32" if spec.dtype == "float64" else "float64"
    add(other, lambda: spec.with_(dtype=other))
    for j, layer in enumerate(spec.layers, start=1):
        if layer.activation != "identity":
            add(f"layer {j} {_act(layer)} → identity", lambda: _with_layer(spec, j, Layer(layer.width)))
    for loss in LOSSES:
        if loss != spec.loss:
            out_layer = replace(spec.layers[-1], width=_out_width(loss, spec.n_out))
            add(f"loss {loss}", lambda: _with_layer(spec, spec.depth, out_layer).with_(loss=loss))
    add("an identity layer in front", lambda: spec.with_(layers=(Layer(spec.n_in),) + spec.layers))
    for layer in dict.fromkeys(replace(l, width=3) for l in spec.layers if l.activation != "identity"):
        add(f"one {_act(layer)} layer", lambda: spec.with_(layers=(layer, spec.layers[-1])))
        add(f"a single {_act(layer)} output layer", lambda: spec.with_(layers=(replace(layer, width=spec.n_out),)))
    add("wider layers", lambda: spec.with_(n_in=spec.n_in + 2, layers=tuple(
        replace(l, width=l.width + 2) for l in spec.layers[:-1]) + spec.layers[-1:]))   # an entry's place vs "the last"
    w = spec.n_out   # every W square and alike: what swapped or transposed blocks need to show
    add("equal widths", lambda: spec.with_(n_in=w, layers=tuple(replace(l, width=w) for l in spec.layers)))
    return out


# --- 4. shapes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A candidate wrong gradient. predict(probe) -> flat gradient (None: the shape says nothing
    about this case); tolerance(probe) -> per-entry bound where it is not the probe's own."""
    category: str
    text: str
    predict: Callable
    layers: tuple | None = None
    activation: str | None = None
    loss: str | None = None
    tolerance: Callable | None = None


class _Backprop(NumpyMLP):
    """The built-in backprop with one factor changed: derivative(k, layer, z, h, d) -> the f'
    used in layer k (0-based), loss_grad(name, y, t, g) -> the dloss/dy used."""

    def __init__(self, derivative=None, loss_grad=None):
        self.derivative, self.loss_grad = derivative, loss_grad

    def act(self, k, layer, z):
        h, d = super().act(k, layer, z)
        return h, d if self.derivative is None else self.derivative(k, layer, z, h, d)

    def loss(self, name, y, t):
        per_sample, g = super().loss(name, y, t)
        return per_sample, g if self.loss_grad is None else self.loss_grad(name, y, t, g)


def _variant(derivative=None, loss_grad=None):
    def predict(p: Probe):
        params, X, Y = p.float64()
        return flatten(_Backprop(derivative, loss_grad).gradients(p.spec, params, X, Y)[1])
    return predict


def _where_act(name, f):
    """A derivative change applied to the layers of one activation."""
    return lambda k, layer, z, h, d: f(layer, z, h, d) if layer.activation == name else d


def _position(pos, depth) -> int | None:
    """A layer position, 1-based or "output", as a 0-based index in a network of `depth`."""
    k = depth - 1 if pos == "output" else pos - 1
    return k if k < depth else None


def _layer_words(pos) -> str:
    return "the output layer" if pos == "output" else f"layer {pos}"


_ACT_SYMBOL = {"sigmoid": "σ", "tanh": "tanh"}
_SMOOTH = ("sigmoid", "tanh", "softplus", "elu")
_OUTPUT_FORM = {  # f' in terms of the output h, as textbooks write it, applied to z by mistake
    "sigmoid": ("σ'(z) is written as z(1 − z): the output form h(1 − h) applied to z", lambda z: z * (1 - z)),
    "tanh": ("tanh'(z) is written as 1 − z²: the output form 1 − h² applied to z", lambda z: 1 - z * z)}
_RELU_FAMILY = ("relu", "leaky_relu", "generalized_relu", "abs")
_SLOPES = (0.0, 0.01, 1.0)  # slopes for z < 0 written in place of the layer's own


def _activation_shapes(acts, depth) -> list[Shape]:
    out = []
    for a in acts:
        sym = _ACT_SYMBOL.get(a, a)
        out.append(Shape(ACTIVATION, f"the wrong values equal the reference without the factor {sym}'(z): "
                         f"the {a} derivative is missing in every {a} layer",
                         _variant(_where_act(a, lambda layer, z, h, d: np.ones_like(d))), activation=a))
        if a in _SMOOTH:
            out.append(Shape(ACTIVATION, f"{sym}' is evaluated at the activation h = {sym}(z) instead of at z "
                             f"in every {a} layer", _variant(_where_act(
                                 a, lambda layer, z, h, d: _activation(layer.activation, layer.param, h)[1])),
                             activation=a))
        if a in _OUTPUT_FORM:
            words, f = _OUTPUT_FORM[a]
            out.append(Shape(ACTIVATION, f"{words} in every {a} layer",
                             _variant(_where_act(a, lambda layer, z, h, d, f=f: f(z))), activation=a))
        if a in _RELU_FAMILY:
            for s in _SLOPES:
                def slope(layer, z, h, d, s=s):
                    return d if layer.param == s else np.where(z > 0, 1.0, s)
                out.append(Shape(ACTIVATION, f"the {a} derivative for z < 0 is {s:g} instead of the layer's slope α",
                                 _variant(_where_act(a, slope)), activation=a))
    for pos in list(range(1, depth + 1)) + ["output"]:
        out.append(Shape(ACTIVATION, f"the wrong values equal the reference without the factor f'(z) in "
                         f"{_layer_words(pos)}: the activation derivative is missing there, whatever the activation",
                         _missing_at(pos), layers=None if pos == "output" else (pos,)))
    return out


def _missing_at(pos):
    def predict(p: Probe):
        k0 = _position(pos, p.spec.depth)
        if k0 is None:
            return None
        return _variant(lambda k, layer, z, h, d: np.ones_like(d) if k == k0 else d)(p)
    return predict


def _softmax_over_batch(name, y, t, g):
    if name != "softmax_ce":
        return g
    e = np.exp(y - y.max())
    return e / e.sum(axis=0, keepdims=True) - t


def _loss_shapes(losses) -> list[Shape]:
    out = []
    if "softmax_ce" in losses:
        out.append(Shape(LOSS, "the softmax in dC/dz is normalized over the batch (axis 0) instead of over "
                         "the classes", _variant(loss_grad=_softmax_over_batch), loss="softmax_ce"))
    return out


def _reg(p: Probe, on: str) -> np.ndarray:
    """λW in the weights' places (on="W") or λb in the biases' (on="b"), flat, zeros elsewhere."""
    params, _, _ = p.float64()
    l2 = p.spec.l2
    return flatten([(l2 * W if on == "W" else 0 * W, l2 * b if on == "b" else 0 * b) for W, b in params])


def _regularizer_shapes() -> list[Shape]:
    return [Shape(REGULARIZER, text, lambda p, k=k, on=on: p.ref + k * _reg(p, on)) for text, k, on in (
        ("the weight-decay term λW is missing from dC/dW", -1.0, "W"),
        ("the weight-decay term λW is added twice to dC/dW", 1.0, "W"),
        ("only half the weight-decay term (½λW) is in dC/dW", -0.5, "W"),
        ("weight decay is applied to the biases too: dC/db has an extra λb", 1.0, "b"))]


_CONSTANTS = (  # (words, c(N); None where undefined, whether it depends on N)
    ("{have} the wrong sign (× −1)", lambda n: -1.0, False),
    ("{are} twice the reference (× 2)", lambda n: 2.0, False),
    ("{are} half the reference (× ½)", lambda n: 0.5, False),
    ("{are} N times the reference: summed over the batch instead of averaged", lambda n: float(n), True),
    ("{are} divided by N once more: averaged twice", lambda n: 1.0 / n, True),
    ("{are} × N/(N − 1): divided by N − 1 instead of N", lambda n: n / (n - 1) if n > 1 else None, True),
    ("{are} × (N − 1)/N", lambda n: (n - 1) / n, True),
)
_PARTS = {"all": "all gradient entries", "data": "the loss parts of all gradients (λW right)",
          "W": "the weight gradients dC/dW", "b": "the bias gradients dC/db"}


def _scale_words(words: str, part: str, loss: str | None) -> str:
    if loss is None:
        return f"{_PARTS[part]} {words.format(have='have', are='are')}"
    if part == "data":   # the loss's own derivative, and every gradient's loss part with it
        return (f"the {loss} derivative dloss/dy {words.format(have='has', are='is')}, and with it every "
                "gradient's loss part (λW right)")
    return f"with loss {loss}, {_PARTS[part]} {words.format(have='have', are='are')}"


def _scaled(p: Probe, c: float, part: str) -> np.ndarray:
    ref = p.ref
    if part == "all":
        return c * ref
    if part == "data":
        reg = _reg(p, "W")
        return c * (ref - reg) + reg
    mask = np.zeros(ref.shape, bool)
    for _, name, sl, _ in blocks(p.spec):
        mask[sl] = name == part
    return np.where(mask, c * ref, ref)


def _fitted_shape(p: Probe) -> list[Shape]:
    """Everything times one constant, fitted on the smallest failing case (1 + ε and the like)."""
    ref, g = p.ref, p.impl
    c = float(g @ ref / (ref @ ref)) if ref @ ref > 0 else 1.0
    if not np.isfinite(c) or any(abs(c - k) <= 1e-12 * abs(k) for k in (1.0, -1.0, 2.0, 0.5)):
        return []   # no factor, or one the named constants already say
    words = f"scaled by 1 + ε, ε = {c - 1:.2g}" if abs(c - 1) < 0.05 else f"× {c:.6g}"
    return [Shape(SCALE, f"all gradient entries are {words}", lambda q: c * q.ref)]


def _scale_shapes(losses) -> list[Shape]:
    out = []
    for loss in (None,) + tuple(losses):
        for words, c_of, by_n in _CONSTANTS:
            for part in _PARTS:
                def predict(p, c_of=c_of, part=part, loss=loss):
                    if loss is not None and p.spec.loss != loss:
                        return p.ref
                    c = c_of(p.n)
                    return None if c is None else _scaled(p, c, part)
                category = BATCH if by_n else LOSS if loss else SCALE
                out.append(Shape(category, _scale_words(words, part, loss), predict, loss=loss))
    return out


def _structure_shapes(depth) -> list[Shape]:
    def zero(pos):
        def predict(p):
            k = _position(pos, p.spec.depth)
            if k is None:
                return None
            pred = p.ref.copy()
            for j, _, sl, _ in blocks(p.spec):
                if j == k + 1:
                    pred[sl] = 0.0
            return pred
        return predict

    def transposed(only):
        def predict(p):
            pred = p.ref.copy()
            for j, name, sl, shape in blocks(p.spec):
                if name == "W" and only in (None, j):
                    pred[sl] = pred[sl].reshape(shape).T.ravel()   # W's gradient laid out as its transpose
            return pred
        return predict

    def swapped(j):
        def predict(p):
            shapes = p.spec.shapes()
            if j >= p.spec.depth or shapes[j - 1] != shapes[j]:
                return None   # nothing to swap, or the arrays come back with the wrong shapes (an error)
            bl = [sl for _, _, sl, _ in blocks(p.spec)]
            pred = p.ref.copy()
            for a, b in ((2 * j - 2, 2 * j), (2 * j - 1, 2 * j + 1)):
                pred[bl[a]], pred[bl[b]] = p.ref[bl[b]], p.ref[bl[a]]
            return pred
        return predict

    positions = list(range(1, depth + 1)) + ["output"]
    out = [Shape(STRUCTURE, f"the gradients of {_layer_words(pos)} are never filled in (all zero)", zero(pos),
                 layers=None if pos == "output" else (pos,)) for pos in positions]
    out += [Shape(STRUCTURE, f"layers {j} and {j + 1} get each other's gradients", swapped(j), layers=(j, j + 1))
            for j in range(1, max(depth, 2))]
    out.append(Shape(STRUCTURE, "every dC/dW is laid out transposed (dW = hᵀg reshaped to W's shape)",
                     transposed(None)))
    out += [Shape(STRUCTURE, f"layer {j}'s dC/dW is laid out transposed", transposed(j), layers=(j,))
            for j in range(1, depth + 1)]
    return out


def _single_entry_shapes(p: Probe) -> list[Shape]:
    """Every entry right but one, found in the smallest failing case: at the same place in
    every case (the layer by number or as the output layer; the index, or the block's last)."""
    if p.cost_wrong or np.count_nonzero(p.wrong) != 1:
        return []
    j, name, idx = param_index(p.spec, int(np.flatnonzero(p.wrong)[0]))
    shape = p.spec.shapes()[j - 1][0 if name == "W" else 1]
    last = tuple(s - 1 for s in shape)
    out = []
    for pos in dict.fromkeys([j] + (["output"] if j == p.spec.depth else [])):
        for at in dict.fromkeys([idx] + (["last"] if idx == last else [])):
            def predict(q, pos=pos, at=at):
                k = _position(pos, q.spec.depth)
                if k is None:
                    return None
                sh = q.spec.shapes()[k][0 if name == "W" else 1]
                where = tuple(s - 1 for s in sh) if at == "last" else at
                if any(i >= s for i, s in zip(where, sh)):
                    return None
                i = [sl for jj, nn, sl, _ in blocks(q.spec) if jj == k + 1 and nn == name][0].start
                pred = q.ref.copy()
                flat = i + int(np.ravel_multi_index(where, sh))
                pred[flat] = q.impl[flat]
                return pred
            entry = f"{name}[-1] (its last entry)" if at == "last" else f"{name}[{','.join(map(str, idx))}]"
            out.append(Shape(SINGLE, f"only one entry is wrong, {_layer_words(pos)} {entry}; every other entry "
                             "is right", predict, layers=None if pos == "output" else (pos,)))
    return out


_FINER = {"float64": 0, "float32": 1, "float16": 2}


def _precision_shape(dtype: str) -> Shape:
    def tolerance(p):
        if _FINER[p.spec.dtype] >= _FINER[dtype]:
            return p.tol
        c = p.case
        return errormodel.gradient_tolerance(p.spec, c.params, c.X, c.Y, dtype)[0] + p.ctx.tolerances[1]
    return Shape(PRECISION, f"the errors are {dtype} rounding: within the error model of a correct {dtype} "
                 f"computation, so networks of a finer dtype are computed or accumulated in {dtype}",
                 lambda p: p.ref, tolerance=tolerance)


def candidate_shapes(failing: list[Probe]) -> list[Shape]:
    """Every shape worth trying on these failing cases, most specific first."""
    smallest = min(failing, key=lambda p: p.size)
    acts = list(dict.fromkeys(l.activation for p in failing for l in p.spec.layers if l.activation != "identity"))
    losses = list(dict.fromkeys(p.spec.loss for p in failing))
    depth = min(p.spec.depth for p in failing)
    return (_structure_shapes(depth) + _regularizer_shapes() + _scale_shapes(losses) + _activation_shapes(acts, depth)
            + _loss_shapes(losses) + _fitted_shape(smallest) + _single_entry_shapes(smallest)
            + [_precision_shape("float32"), _precision_shape("float16")])


def _matches(p: Probe, pred: np.ndarray, tol: np.ndarray) -> bool:
    """The implementation equals the prediction within the bound, plus the rounding of the
    prediction's own computation (a few units of the case's dtype at each block's scale: a
    variant's magnitudes are not the reference's)."""
    c = rounding_factor(p.spec, p.n) * unit_roundoff(p.spec.dtype)
    diff = np.where(p.kinks, 0.0, np.abs(p.impl - pred))
    for _, _, sl, _ in blocks(p.spec):
        scale = np.abs(pred[sl]).max(initial=0) + np.abs(p.impl[sl]).max(initial=0)
        if np.any(diff[sl] > tol[sl] + 4 * c * scale):
            return False
    return True


@dataclass
class Fit:
    shape: Shape
    failing: int    # cases the shape predicts wrong, and wrong they are
    passing: int    # cases it predicts right, and right they are


def fit(shape: Shape, probes: list[Probe]) -> Fit | None:
    """The shape's agreement if the implementation equals it on every case it speaks of and
    it explains at least one failure; None at the first case that contradicts it."""
    failing = passing = 0
    for p in probes:
        if not p.ok:
            continue
        pred = shape.predict(p)
        if pred is None:
            continue
        tol = p.tol if shape.tolerance is None else shape.tolerance(p)
        if not np.all(np.isfinite(pred)) or not _matches(p, pred, tol):
            return None
        failing += p.grads_wrong
        passing += not p.grads_wrong
    return Fit(shape, failing, passing) if failing else None


# --- 5. conditions --------------------------------------------------------------------------

def features(spec: NetworkSpec, n: int) -> set[str]:
    """What a case has that a failure may depend on (words for `_phrase`)."""
    out = {f"loss {spec.loss}", spec.dtype}
    if spec.l2:
        out.add("λ > 0")
    if n >= 2:
        out.add("N ≥ 2")
    for j, layer in enumerate(spec.layers, start=1):
        out.add(f"{layer.activation} layer")
        if j == 1:
            out.add(f"layer 1 {layer.activation}")
            if layer.activation != "identity":
                out.add("layer 1 not identity")
        if j == spec.depth:
            out.add(f"output {layer.activation}")
    return out


def _phrase(f: str) -> str:
    if f.endswith(" layer") and not f.startswith(("layer 1 ", "output ")):
        return f"network with {'an' if f[0] in 'aeiou' else 'a'} {f}"
    if f.startswith("layer 1 "):
        return f"network whose layer 1 is {f[8:]}"
    if f.startswith("output "):
        return f"network whose output layer is {f[7:]}"
    if f.startswith("loss "):
        return f"network with {f}"
    return {"λ > 0": "network with λ > 0", "N ≥ 2": "batch of N ≥ 2"}.get(f, f"{f} network")


@dataclass
class Condition:
    feature: str
    failing: int        # failing cases with it (all of them)
    with_it: int        # cases with it
    without: int        # passing cases without it

    @property
    def sufficient(self) -> bool:
        return self.failing == self.with_it

    def words(self) -> str:
        ph = _phrase(self.feature)
        if self.sufficient:
            return f"wrong on every {ph} ({self.failing} cases), right on every other ({self.without})"
        return (f"wrong only on a {ph}: {self.failing} of {self.with_it} such cases fail, and every one of "
                f"the {self.without} cases without it passes")


def _specific(f: str) -> bool:
    """A feature of one position (layer 1, the output layer), less general than the others."""
    return f.startswith(("layer 1 ", "output "))


def conditions(records: list[tuple[NetworkSpec, int, bool]]) -> list[Condition]:
    """Features every failing case has and some passing case lacks: the ones that hold for
    exactly the failing cases first, then the ones more passing cases lack, general before
    positional; one feature per way of splitting the cases (the others say the same)."""
    failing = [features(s, n) for s, n, bad in records if bad]
    passing = [features(s, n) for s, n, bad in records if not bad]
    if len(failing) < MIN_EVIDENCE or not passing:
        return []
    found = {}
    for f in sorted(set.intersection(*failing), key=lambda f: (_specific(f), f)):
        split = tuple(f in fs for fs in passing)
        without = split.count(False)
        if without >= MIN_EVIDENCE and split not in found:
            found[split] = Condition(f, len(failing), len(failing) + sum(split), without)
    return sorted(found.values(), key=lambda c: (not c.sufficient, -c.without, _specific(c.feature)))


def _category_from(conds: list[Condition]) -> tuple[str | None, dict]:
    """No shape fits: the category the conditions point at, with the activation or loss."""
    for c in conds:
        f = c.feature
        if f.startswith("loss "):
            return LOSS, {"loss": f[5:]}
        if f.endswith(" layer") and " " not in f[:-6] and f != "identity layer":
            return ACTIVATION, {"activation": f[:-6]}
        if f == "layer 1 not identity" or (f.startswith("layer 1 ") and f != "layer 1 identity"):
            return ACTIVATION, {"layers": (1,)}
        if f == "λ > 0":
            return REGULARIZER, {}
        if f == "N ≥ 2":
            return BATCH, {}
        if f in _FINER:
            return PRECISION, {}
    return None, {}


# --- 6. errors ------------------------------------------------------------------------------

@dataclass
class ErrorGroup:
    implementation: str
    message: str        # the first message of the group, in full
    count: int
    kind: str = ""

    def words(self) -> str:
        return f"{self.count} × {self.message}"


def _pattern(message: str) -> str:
    """A message with its numbers blanked: one group for "shape (3, 4)" and "shape (4, 2)"."""
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", message)


def group_errors(verdicts) -> list[ErrorGroup]:
    """Error verdicts grouped by implementation and message (numbers aside), most frequent
    first, each with its count and its first message in full."""
    groups: dict = {}
    for v in verdicts:
        if v.status != ERROR:
            continue
        key = (v.implementation, _pattern(v.message))
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = ErrorGroup(v.implementation, v.message, 1, v.extra.get("kind", ""))
    return sorted(groups.values(), key=lambda g: (g.implementation, -g.count))


# --- 7. the diagnosis -----------------------------------------------------------------------

@dataclass
class Diagnosis:
    implementation: str
    category: str | None          # one of CATEGORIES; None: no category fits (see findings)
    shape: str | None             # the error's shape in words, None where none fits
    layers: tuple | None = None   # the 1-based layers the bug sits in; None: it depends on the network
    activation: str | None = None
    loss: str | None = None
    findings: list = field(default_factory=list)     # sentences: blocks, deltas, conditions, cases
    alternatives: list = field(default_factory=list)  # other shapes that fit the same cases
    agreed: int = 0               # cases that agree with the shape (or the condition)
    checked: int = 0              # cases it was checked on
    predicted_wrong: int | None = None   # of those, the failing ones the shape predicted
    wrong_values: bool = False    # some case has wrong values (not only errors)
    reproducer: str = ""          # Python that reruns the smallest failing case, from any folder
    reproducer_case: str = ""
    errors: list = field(default_factory=list)       # ErrorGroup

    def headline(self) -> str:
        if self.category is None:
            what = self.shape or ("wrong gradients, no simple cause found" if self.wrong_values else
                                  "no wrong value found, only errors")
            return f"{self.implementation}: {what}"
        what, which = self.category, self.activation or self.loss
        if which:
            what += f" ({which})"
        if self.layers:
            what += f", layer{'s' * (len(self.layers) > 1)} {' and '.join(map(str, self.layers))}"
        return f"{self.implementation}: {what}" + (f" — {self.shape}" if self.shape else "")

    def confidence(self) -> str:
        if not self.checked:
            return "confidence: no case could be checked"
        head = f"all {self.checked} cases agree" if self.agreed == self.checked else \
            f"{self.agreed} of {self.checked} cases agree"
        if self.shape and self.category != MUTATION and self.predicted_wrong is not None:
            return (f"confidence: {head} with the shape ({self.predicted_wrong} wrong as it predicts, "
                    f"{self.checked - self.predicted_wrong} right as it predicts)")
        return f"confidence: {head}"

    def text(self) -> str:
        lines = [self.headline() + "."] + [f"  {s}" for s in self.findings] + [f"  {self.confidence()}."]
        if self.alternatives:
            lines.append("  also consistent with: " + "; ".join(self.alternatives) + ".")
        if self.errors:
            lines.append("  errors:")
            lines += [f"    {g.words()}" for g in self.errors]
        if self.reproducer:
            lines.append(f"  smallest reproducer ({self.reproducer_case}):")
            lines += ["    " + l for l in self.reproducer.splitlines()]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"implementation": self.implementation, "category": self.category, "shape": self.shape,
                "layers": None if self.layers is None else list(self.layers), "activation": self.activation,
                "loss": self.loss, "wrong_values": self.wrong_values, "headline": self.headline(),
                "findings": list(self.findings),
                "alternatives": list(self.alternatives), "agreed": self.agreed, "checked": self.checked,
                "predicted_wrong": self.predicted_wrong, "confidence": self.confidence(),
                "reproducer": self.reproducer, "reproducer_case": self.reproducer_case,
                "errors": [vars(g).copy() for g in self.errors]}


def portable_source(impl, impl_ref: str | None = None) -> str:
    """How a reproducer names the implementation: a file by its absolute path, a module by its
    importable name (see `reproducer` for one that is not installed), the built-in as 'builtin'."""
    from implementations.registry import absolute_source
    return absolute_source(impl_ref or getattr(impl, "source", None) or _importable(getattr(impl, "impl", impl)))


def _importable(obj) -> str:
    """module:attr for a raw implementation object (its file where the module has no name)."""
    from implementations.numpy_mlp import builtin
    if obj is builtin:
        return "builtin"
    cls = type(obj)
    mod = sys.modules.get(cls.__module__)
    where = cls.__module__
    if mod is None or where == "__main__" or where.startswith("backcheck_plugin_"):
        where = os.path.abspath(getattr(mod, "__file__", "") or "?")
    for name, value in vars(mod or object()).items():
        if value is obj:
            return f"{where}:{name}"
    return f"{where}:{cls.__qualname__}"   # a class is instantiated with no arguments


@lru_cache(maxsize=1)
def _installed() -> frozenset:
    from importlib.metadata import packages_distributions
    return frozenset(packages_distributions())


def _import_root(ref: str) -> str | None:
    """The folder a module:attr source imports from when its package is not installed (as
    `python -m` from the folder it was run in would): a reproducer puts it on sys.path."""
    import importlib.util
    module = ref.rpartition(":")[0]
    if not module or module.endswith(".py") or "/" in module or os.sep in module:
        return None
    top = module.split(".")[0]
    if top in _installed():
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    where = (spec.submodule_search_locations or [spec.origin])[0] if spec else None
    return os.path.dirname(os.path.abspath(where)) if where else None


def reproducer(case: Case, impl, impl_ref: str | None = None) -> str:
    """Python that reruns vs_jax on the case from any folder (Case.reproducer, with the
    implementation named portably)."""
    ref = portable_source(impl, impl_ref)
    root = _import_root(ref)
    code = case.reproducer(ref, "vs_jax")
    return code if root is None else f"import sys\nsys.path.insert(0, {root!r})\n{code}"


def _block_words(p: Probe) -> str:
    """"layer 1: dC/dW and dC/db wrong (6 of 16 entries); layers 2–3 right; the cost right":
    consecutive layers with the same wrong blocks said once."""
    groups = []   # [(wrong block names, [layers], wrong entries, entries)]
    for j in range(1, p.spec.depth + 1):
        bl = [(name, sl) for jj, name, sl, _ in blocks(p.spec) if jj == j]
        names = tuple(name for name, sl in bl if p.wrong[sl].any())
        bad, size = sum(int(np.count_nonzero(p.wrong[sl])) for _, sl in bl), sum(sl.stop - sl.start for _, sl in bl)
        if groups and groups[-1][0] == names:
            groups[-1][1].append(j)
            groups[-1][2:] = [groups[-1][2] + bad, groups[-1][3] + size]
        else:
            groups.append([names, [j], bad, size])
    if len(groups) == 1 and not groups[0][0]:
        return f"every gradient right; the cost {'wrong' if p.cost_wrong else 'right'}"
    out = []
    for names, js, bad, size in groups:
        if not names:
            out.append(f"{_layers_text(js)} right")
            continue
        text = f"{_layers_text(js)}: {' and '.join('dC/d' + n for n in names)} wrong ({bad} of {size} entries)"
        if len(names) == 1:
            text += f", dC/d{'b' if names == ('W',) else 'W'} right"
        out.append(text)
    out.append(f"the cost {'wrong' if p.cost_wrong else 'right'}")
    return "; ".join(out)


def _layers_text(js: list[int]) -> str:
    runs, start = [], js[0]
    for a, b in zip(js, js[1:] + [None]):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ("layer " if len(js) == 1 else "layers ") + ", ".join(runs)


def _delta_words(deltas: list[bool] | None) -> str | None:
    if deltas is None:
        return None
    bad = [j for j, w in enumerate(deltas, start=1) if w]
    if not bad:
        return "the deltas dC/dz are right in every layer: the error is in forming dC/dW and dC/db from them"
    good = [j for j in range(1, len(deltas) + 1) if j not in bad]
    return (f"the deltas dC/dz are wrong in {_layers_text(bad)}" + (f", right in {_layers_text(good)}" if good else "")
            + f": the first wrong one from the output is layer {max(bad)}'s, so layer {max(bad)}'s backward step "
            "is where the error enters")


def _directed_words(base: tuple, directed: list[Probe]) -> str | None:
    """"right with λ = 0, with loss mse or l1; still wrong with N = 1": what each change did."""
    def listed(whys):
        losses = [w[5:] for w in whys if w.startswith("loss ")]
        rest = [w for w in whys if not w.startswith("loss ")]
        return ", with ".join(rest + ([f"loss {' or '.join(losses)}"] if losses else []))
    right = [p.why for p in directed if p.ok and not p.failed and p.why != "new data"]
    still = [p.why for p in directed if p.failed and p.why != "new data"]
    parts = [f"{head} with {listed(whys)}" for head, whys in (("right", right), ("still wrong", still)) if whys]
    spec, n = base
    return f"directed cases from {spec.describe()}, N={n}: " + "; ".join(parts) if parts else None


def _mutation_words(verdicts) -> str:
    inputs = [m[1] for v in verdicts if (m := re.search(r"mutated its input (.+?) \(", v.message))]
    cases = len({v.case for v in verdicts})
    return (f"the implementation changes its inputs ({', '.join(dict.fromkeys(inputs))}) in {cases} "
            f"case{'s' * (cases > 1)}: an in-place update of an array that aliases an input; its gradients "
            "cannot be checked where it does")


def diagnose(impl, verdicts, impl_ref: str | None = None) -> Diagnosis | None:
    """The diagnosis of one implementation (raw, validated or isolated) from its verdicts in a
    run; None when there is nothing wrong to explain (see the module docstring)."""
    name = getattr(impl, "name", str(impl))
    verdicts = [v for v in verdicts if v.implementation == name]
    cases = run_cases(verdicts)
    errors = group_errors(verdicts)
    if not any(rc.failed for rc in cases) and not errors:
        return None
    probes, anchor, base = _probes(impl, cases, impl_ref)
    usable = [p for p in probes if p.ok]
    failing = [p for p in usable if p.failed]
    mutated = [v for v in verdicts if v.status == ERROR and v.extra.get("kind") == MUTATED]
    mutated = mutated or [p.error.verdict("gradients", p.spec, p.case.describe()) for p in probes
                          if not p.ok and p.error.kind == MUTATED]
    if not failing and not errors:
        return None   # no case reproduces the run's failures: the verdicts say what there is to say
    d = Diagnosis(name, None, None, errors=errors, wrong_values=bool(failing))
    if failing:
        _explain(d, failing, usable, cases, anchor, base)
    if mutated:
        d.findings.insert(0, _mutation_words(mutated))
        if d.category is None:
            d.category, d.shape = MUTATION, "gradients() writes into the arrays it is given"
            d.agreed = d.checked = len({v.case for v in mutated})
    elif not failing:
        d.findings.append(f"no wrong value in the {len(usable)} cases that could be checked: the errors are "
                          "all there is" if usable else "no case could be checked: every call ended in an error")
    smallest = min(failing or [p for p in probes if not p.ok] or probes, key=lambda p: p.size)
    d.reproducer = reproducer(smallest.case, impl, impl_ref)
    d.reproducer_case = smallest.case.describe()
    return d


def diagnose_run(sources, verdicts, isolate: bool = True) -> list[Diagnosis]:
    """The diagnoses of a run: each implementation source (the run's --impl list) loaded as
    the run loads it and diagnosed from the run's verdicts; only those with something to say.
    A source that no longer loads is passed over (its load error is among the verdicts)."""
    from implementations.registry import BUILTIN, load
    if not any(v.status in (FAILED, ERROR) for v in verdicts):
        return []
    out = []
    for source in sources:
        try:
            impl = load(source, isolate=isolate and source not in BUILTIN)
        except PluginError:
            continue
        try:
            d = diagnose(impl, verdicts, source)
        finally:
            if hasattr(impl, "close"):
                impl.close()
        if d is not None:
            out.append(d)
    return out


def _probes(impl, cases: list[RunCase], impl_ref):
    """The run's smallest failing and passing cases rebuilt, and the directed cases built from
    the smallest failing one (where none failed, from the smallest erroring one). Returns the
    probes, the smallest failing case of the run (None if none was rebuilt) and the (network,
    N) the directed cases come from."""
    caps = impl.capabilities
    bad = sorted((rc for rc in cases if rc.failed), key=lambda rc: rc.size)
    good = sorted((rc for rc in cases if rc.passed and not rc.failed), key=lambda rc: rc.size)
    probes = [run_probe(impl, case, "from the run", impl_ref)
              for case in map(rebuild, bad[:RUN_CASES] + good[:RUN_CASES]) if case is not None]
    anchor = min((p for p in probes if p.failed), key=lambda p: p.size, default=None)
    start = bad or sorted((rc for rc in cases if rc.errors), key=lambda rc: rc.size)
    base = (anchor.spec, anchor.n) if anchor else (start[0].spec, start[0].n) if start else None
    if base is None:
        return probes, anchor, base
    seen = set()   # a directed case may repeat one of the run's (new data, and named by what changed)
    for i, (why, spec, n) in enumerate(directed_specs(*base), start=1):
        n = n if why in ("N = 1", "new data") else min(n, DIRECTED_N)
        if (spec, n) not in seen and caps.supports(spec) is None:
            seen.add((spec, n))
            probes.append(run_probe(impl, fresh_case(spec, n, i, why), why, impl_ref))
    return probes, anchor, base


def _explain(d: Diagnosis, failing: list[Probe], usable: list[Probe], cases: list[RunCase], anchor, base):
    """Fill in the category, shape, layers and findings from the failing and passing cases."""
    fits, wrong_grads = [], [p for p in failing if p.grads_wrong]
    for shape in candidate_shapes(wrong_grads) if wrong_grads else []:
        f = fit(shape, usable)
        if f is not None and all(f.shape.text != g.shape.text for g in fits):
            fits.append(f)
    where = "the smallest failing case of the run" if anchor else "the smallest failing case"
    anchor = anchor or min(failing, key=lambda p: p.size)
    d.findings.append(f"in {where} ({anchor.case.describe()}): {_block_words(anchor)}")
    deltas = _delta_words(wrong_deltas(anchor))
    if deltas:
        d.findings.append(deltas)
    records = [(rc.spec, rc.n, rc.failed) for rc in cases if rc.failed or rc.passed]
    records += [(p.spec, p.n, p.failed) for p in usable if p.why != "from the run"]
    conds = conditions(records)
    if conds:   # the best condition, and a second one only where it also holds exactly
        d.findings.append("; ".join(c.words() for c in conds[:1] + [c for c in conds[1:2] if c.sufficient]))
    elif all(bad for *_, bad in records):
        d.findings.append(f"wrong on every case tried ({len(records)})")
    directed = _directed_words(base, [p for p in usable if p.why != "from the run"])
    if directed:
        d.findings.append(directed)
    if fits:
        s = fits[0].shape
        d.category, d.shape, d.layers, d.activation, d.loss = s.category, s.text, s.layers, s.activation, s.loss
        d.agreed = d.checked = fits[0].failing + fits[0].passing
        d.predicted_wrong = fits[0].failing
        # other exact shapes that fit as well; a precision shape fits any error small enough
        d.alternatives = [f.shape.text for f in fits[1:] if f.shape.category != PRECISION][:3]
        shape_errors = sum(g.count for g in d.errors if " has shape " in g.message)
        if s.category == STRUCTURE and s.layers and len(s.layers) == 2 and shape_errors:
            d.findings.append(f"where layers {s.layers[0]} and {s.layers[1]} differ in shape the arrays come back "
                              f"in each other's shapes: the {shape_errors} shape errors are the same bug")
    elif not wrong_grads:
        d.shape = "the cost is wrong; every gradient is right"
        d.agreed = d.checked = len(failing)
    else:
        d.category, which = _category_from(conds)
        d.activation, d.loss, d.layers = which.get("activation"), which.get("loss"), which.get("layers")
        d.checked = len(records)   # a condition holds on every failing case by construction
        d.agreed = len(records) if d.category else 0
        d.findings.append("no simple shape (a ratio, a missing factor or term, a moved block) matches the "
                          "wrong values" + (": the category comes from where it fails" if d.category else ""))
