"""Hypothesis strategies for networks, parameters and batches — small and composable, each
usable on its own in a user's test:

    @given(case=cases())                       # a whole Case: spec + params + batch
    @given(spec=specs(losses=["mse"]))         # only architectures
    @given(layer=layers(activations=["tanh"]))
    @given(case=cases_for(impl.capabilities))  # only what an implementation declares (Capabilities)

Shrinking leads to readable counterexamples: fewer layers, narrower layers, activations toward
`identity` (first in the vocabulary), losses toward `mse`, float64, no regularizer, unit scale.
Parameters and batches are drawn from a seeded NumPy generator (one integer for Hypothesis to
shrink) since drawing hundreds of floats one by one would dominate the run time; the failure
report still prints them in full (Case.reproducer).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from implementations.protocol import ANY
from properties.checks import Case
from reference.spec import ACTIVATIONS, DTYPES, LOSSES, Layer, NetworkSpec, one_hot

# output width by loss: 1 for the scalar-label losses, >= 2 classes for softmax
_OUT_WIDTH = {"logistic": (1, 1), "perceptron": (1, 1), "hinge": (1, 1), "bce": (1, 1),
              "softmax_ce": (2, 6), "mse": (1, 4), "l1": (1, 4)}
SCALES = {"unit": 1.0, "tiny": 1e-3, "large": 8.0}   # shrinks toward "unit"
MAX_PIECES = 3   # maxout layers have 2 or MAX_PIECES pieces


def _key(names):
    return None if names is None else frozenset(names)


@lru_cache(maxsize=None)
def _activations(names):
    return st.sampled_from([a for a in ACTIVATIONS if names is None or a in names])


def activations(names=None):
    return _activations(_key(names))


# An activation with its parameter is one draw from a table ordered simplest first (every
# activation at its first parameter, then the other parameters, then maxout with 3 pieces):
# shrinking moves toward index 0, and a layer costs two draws (width, activation), not up to
# four — Hypothesis's per-draw overhead is most of a small case's generation time.
# The parameters drawn where an activation accepts ANY, besides its default:
_ALPHAS = {"leaky_relu": (0.01, 0.3), "elu": (0.1, 0.3, -0.5, 2.0), "generalized_relu": (0.1, 0.3, -0.5, 1.0, 2.0)}


def _alphas(name, allowed) -> tuple:
    """The alphas a layer of `name` is drawn with, simplest first (None: the default).
    allowed: ANY or a frozenset of parameters (Capabilities.params)."""
    default = ACTIVATIONS[name]
    if default is None:
        return (None,)
    if allowed is ANY:
        return (None,) + _ALPHAS.get(name, ())
    rest = sorted(v for v in allowed if v != default)
    return ((None,) if default in allowed else ()) + tuple(rest)


def _kind_table(choices) -> tuple:
    """choices: ((name, alphas), ...) -> the (activation, alpha, pieces) table, vocabulary order."""
    choices = dict(choices)
    names = [a for a in ACTIVATIONS if a in choices]
    kinds = [(a, choices[a][0], 2 if a == "maxout" else 1) for a in names]
    kinds += [(a, alpha, 1) for a in names for alpha in choices[a][1:]]
    kinds += [("maxout", None, MAX_PIECES)] if "maxout" in choices else []
    return tuple(kinds)


def _layer_kinds(names) -> tuple:
    """Every parameter of the table for the named activations (None: all of them)."""
    return _kind_table((a, _alphas(a, ANY)) for a in ACTIVATIONS if names is None or a in names)


def declared_kinds(caps, position: str, exclude=frozenset()) -> tuple:
    """The layer kinds a declaration allows at "hidden" or "output", each activation with its
    declared parameters (Capabilities.params), minus the activations in `exclude`."""
    return _kind_table((a, _alphas(a, caps.params(a))) for a in caps.allowed(position) if a not in exclude)


@lru_cache(maxsize=None)
def _kinds(table):
    """The activation first, then its variant: each choice shrinks on its own, to the first
    activation and to its default parameter. (One flat sampled_from over the table made the
    shrinker jump over every other activation's parameters to reach a default, and it stopped.)"""
    groups: dict = {}
    for kind in table:
        groups.setdefault(kind[0], []).append(kind)
    names = st.sampled_from(tuple(groups))
    variants = {a: st.sampled_from(tuple(v)) for a, v in groups.items()}
    return st.composite(lambda draw: draw(variants[draw(names)]))()


def _draw_layer(draw, width_st, kinds_st) -> Layer:
    width = draw(width_st)
    act, alpha, pieces = draw(kinds_st)
    return Layer(width, act, alpha=alpha, pieces=pieces)


def layers(width=st.integers(1, 16), activations=None):
    """One layer: a width and an activation with its parameter (maxout with 2-3 pieces)."""
    kinds = _kinds(_layer_kinds(_key(activations)))
    return st.composite(lambda draw: _draw_layer(draw, width, kinds))()


def _losses(names) -> tuple:
    return tuple(l for l in LOSSES if names is None or l in names)


def specs(activations=None, losses=None, dtypes=("float64",), max_hidden=4, max_width=16, max_in=16,
          l2=None):
    """A network: input width 1-max_in, 1..max_hidden hidden layers of width 1-max_width, an
    output layer sized for the loss, one activation per layer. (Strategies are built once per
    argument set: building them per draw would cost more than the draw itself.)"""
    kinds = _layer_kinds(_key(activations))
    return _specs(_spec_drawer(kinds, kinds, False, _losses(_key(losses)), tuple(dtypes), max_hidden,
                               max_width, max_in, l2 if l2 is not None else _L2))


@lru_cache(maxsize=None)
def _specs(drawer):
    strategy = st.composite(drawer)()
    _DRAWERS[strategy] = drawer
    return strategy


_DRAWERS: dict = {}  # specs() strategy -> its draw function, which cases() inlines


_L2 = st.sampled_from([0.0, 0.0, 0.1, 1e-3])
_NO_L2 = st.just(0.0)


@lru_cache(maxsize=None)
def _spec_drawer(hidden_kinds, output_kinds, uniform, losses, dtypes, max_hidden, max_width, max_in, l2):
    """draw -> NetworkSpec; cases() calls it inside its own draw (a nested composite per spec
    would add its overhead to every example). uniform: one kind for every hidden layer."""
    loss_st = st.sampled_from(losses)
    max_hidden = max_hidden if hidden_kinds else 0
    n_in_st, n_hidden_st = st.integers(1, max_in), st.integers(1 if max_hidden else 0, max_hidden)
    width_st = st.integers(1, max_width)
    hidden_st, out_st = (_kinds(hidden_kinds) if hidden_kinds else None), _kinds(output_kinds)
    out_width = {loss: st.integers(*_OUT_WIDTH[loss]) for loss in LOSSES}
    dtype_st = st.sampled_from([d for d in DTYPES if d in dtypes])

    def draw_spec(draw) -> NetworkSpec:
        loss = draw(loss_st)
        n_in = draw(n_in_st)
        n_hidden = draw(n_hidden_st)
        if uniform and n_hidden:
            act, alpha, pieces = draw(hidden_st)
            hidden = [Layer(draw(width_st), act, alpha=alpha, pieces=pieces) for _ in range(n_hidden)]
        else:
            hidden = [_draw_layer(draw, width_st, hidden_st) for _ in range(n_hidden)]
        out = _draw_layer(draw, out_width[loss], out_st)
        return NetworkSpec(n_in, tuple(hidden) + (out,), loss, draw(l2), draw(dtype_st))
    return draw_spec


def targets(spec: NetworkSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """Targets valid for the spec's loss."""
    k = spec.n_out
    return {
        "real": lambda: rng.standard_normal((n, k)),
        "pm1": lambda: rng.choice([-1.0, 1.0], size=(n, k)),
        "01": lambda: rng.choice([0.0, 1.0], size=(n, k)),
        "simplex": lambda: one_hot(rng.integers(0, k, size=n), k),
    }[LOSSES[spec.loss]]()


def params_for(spec: NetworkSpec, rng: np.random.Generator, scale: float, zeros: bool) -> list:
    """Gaussian parameters at the given scale (1/sqrt(n_in) per layer); with zeros, about a
    quarter of the entries are exactly 0 (the slides' checker cannot decide there)."""
    out = []
    for ws, bs in spec.shapes():
        W = rng.standard_normal(ws) * scale / np.sqrt(ws[1])
        b = rng.standard_normal(bs) * scale * 0.5
        if zeros:
            W[rng.random(ws) < 0.25] = 0.0
            b[rng.random(bs) < 0.25] = 0.0
        out.append((W, b))
    return out


_SCALE_NAMES = tuple(SCALES)


def cases(spec=None, batch=None, scales=_SCALE_NAMES, **spec_kwargs):
    """A full case: a spec (or `specs(**spec_kwargs)`), parameters and a batch (N 1-32)."""
    spec = spec if spec is not None else specs(**spec_kwargs)
    return _cases(spec, batch if batch is not None else _BATCH, tuple(scales))


def batches(draws: int, spec=None, batch=None, scales=_SCALE_NAMES, **spec_kwargs):
    """Lists of `draws` cases of one drawn architecture and batch size (see _batches), drawn
    as cases() draws one."""
    spec = spec if spec is not None else specs(**spec_kwargs)
    return _batches(spec, batch if batch is not None else _BATCH, tuple(scales), draws)


MAX_BATCH = 32
_BATCH = st.integers(1, MAX_BATCH)


def reference_buckets(max_hidden=4, max_width=16, max_in=16, max_batch=MAX_BATCH) -> list:
    """The JAX reference's shape buckets the cases drawn with these limits fall in (maxout
    draws 2 or 3 pieces): what reference.jax_ref.prepare compiles ahead for the suite."""
    from reference.jax_ref import buckets_covering
    return buckets_covering(max_hidden + 1, max(max_width, max_in), max_batch, max_pieces=MAX_PIECES)


_SEEDS = st.integers(0, 2 ** 32 - 1)


def _settings(scales) -> list:
    """(scale, zeros) pairs, simplest first: unit scale without zeros."""
    return [(s, z) for z in (False, True) for s in scales]


def case_of(spec: NetworkSpec, n: int, scale: str, zeros: bool, seed: int) -> Case:
    """The case a draw stands for: parameters and a batch of n from a NumPy generator seeded
    with `seed`, labelled so that the label alone rebuilds it ("seed=S scale=X[ zeros]")."""
    rng = np.random.default_rng(seed)
    params = params_for(spec, rng, SCALES[scale], zeros)
    X = rng.standard_normal((n, spec.n_in))
    Y = targets(spec, rng, n)
    return Case.make(spec, params, X, Y, label=f"seed={seed} scale={scale}{' zeros' if zeros else ''}",
                     direction_seed=seed)


@lru_cache(maxsize=None)
def _cases(spec_st, batch_st, scales):
    draw_spec = _DRAWERS.get(spec_st, lambda draw: draw(spec_st))
    # (scale, zeros) in one draw, shrinking toward unit scale without zeros
    setting_st = st.sampled_from(_settings(scales))

    @st.composite
    def draw_case(draw) -> Case:
        spec = draw_spec(draw)
        n = draw(batch_st)
        scale, zeros = draw(setting_st)
        return case_of(spec, n, scale, zeros, draw(_SEEDS))
    return draw_case()


@lru_cache(maxsize=None)
def _batches(spec_st, batch_st, scales, draws):
    """Lists of `draws` cases of one architecture and batch size: one Hypothesis example, as
    many parameter sets and batches as `draws` (seeds seed, seed+1, ..., the (scale, zeros)
    settings in turn from a drawn first one). Hypothesis explores and shrinks the architecture,
    N, the first setting and the seed; each case stays a single case of its own (its label
    rebuilds it, its reproducer reruns it alone)."""
    draw_spec = _DRAWERS.get(spec_st, lambda draw: draw(spec_st))
    settings = _settings(scales)
    first_st = st.integers(0, len(settings) - 1)

    @st.composite
    def draw_batch(draw) -> list:
        spec = draw_spec(draw)
        n = draw(batch_st)
        first, seed = draw(first_st), draw(_SEEDS)
        return [case_of(spec, n, *settings[(first + k) % len(settings)], (seed + k) % 2 ** 32) for k in range(draws)]
    return draw_batch()


def _plan(caps, loss, dtypes, exclude):
    """What cases_for draws from: the declaration, narrowed to a loss, dtypes and activations
    left out. (losses, dtypes, hidden kinds, output kinds); every part inside caps.supports()."""
    losses = tuple(l for l in _losses(caps.losses) if loss is None or l == loss)
    dts = tuple(d for d in DTYPES if d in caps.dtypes and (dtypes is None or d in dtypes))
    return losses, dts, declared_kinds(caps, "hidden", exclude), declared_kinds(caps, "output", exclude)


def undeclared(caps, loss: str | None = None, *, dtypes=None, exclude=frozenset()) -> str | None:
    """Why cases_for(caps, loss, dtypes=..., exclude=...) could draw nothing, or None. The
    reason is caps.supports() on the simplest network the test asks for, so it names what the
    declaration lacks in the gate's own words."""
    return _undeclared(caps, loss, None if dtypes is None else tuple(dtypes), frozenset(exclude))


@lru_cache(maxsize=None)
def _undeclared(caps, loss, dtypes, exclude):
    losses, dts, _, output = _plan(caps, loss, dtypes, exclude)
    if losses and dts and output:
        return None
    act, alpha, pieces = (output or declared_kinds(caps, "output") or (("identity", None, 1),))[0]
    probe_loss = loss or (_losses(caps.losses) or ("mse",))[0]
    dtype = (dts or tuple(dtypes or ()) or ("float64",))[0]
    probe = NetworkSpec(1, (Layer(_OUT_WIDTH[probe_loss][0], act, alpha=alpha, pieces=pieces),), probe_loss, 0.0, dtype)
    return caps.supports(probe) or (f"no output activation declared besides {', '.join(sorted(exclude))}, "
                                    "which these checks leave out")


def cases_for(caps, loss: str | None = None, *, dtypes=None, exclude=frozenset(), max_hidden=4, max_width=16,
              max_in=16, batch=None, scales=_SCALE_NAMES):
    """Cases inside what an implementation declares, built from the declaration (nothing is
    drawn and then rejected): its losses (or just `loss`), dtypes (narrowed to `dtypes`), the
    regularizer, the hidden and output activations each with its declared parameters (minus
    `exclude`), one kind for all hidden layers where declared uniform. Every case satisfies
    caps.supports(case.spec) is None. ValueError where nothing can be drawn (`undeclared`
    says why: skip those tests, do not run them on an empty strategy)."""
    return _cases_for(caps, loss, None if dtypes is None else tuple(dtypes), frozenset(exclude), max_hidden,
                      max_width, max_in, batch if batch is not None else _BATCH, tuple(scales))


@lru_cache(maxsize=None)
def _cases_for(caps, loss, dtypes, exclude, max_hidden, max_width, max_in, batch, scales):
    return _cases(_declared_specs(caps, loss, dtypes, exclude, max_hidden, max_width, max_in), batch, scales)


def batches_for(caps, loss: str | None = None, *, draws: int, dtypes=None, exclude=frozenset(), max_hidden=4,
                max_width=16, max_in=16, batch=None, scales=_SCALE_NAMES):
    """Lists of `draws` cases (one architecture and batch size, several parameter sets and
    batches, see _batches) inside the declaration, as cases_for draws them."""
    return _batches(_declared_specs(caps, loss, None if dtypes is None else tuple(dtypes), frozenset(exclude),
                                    max_hidden, max_width, max_in), batch if batch is not None else _BATCH,
                    tuple(scales), draws)


@lru_cache(maxsize=None)
def _declared_specs(caps, loss, dtypes, exclude, max_hidden, max_width, max_in):
    """The specs() strategy of the declaration (the one place it is built from: cases_for and
    batches_for draw only from it). ValueError where nothing can be drawn."""
    reason = undeclared(caps, loss, dtypes=dtypes, exclude=exclude)
    if reason:
        raise ValueError(f"cases_for: nothing declared to draw: {reason}")
    losses, dts, hidden, output = _plan(caps, loss, dtypes, exclude)
    drawer = _spec_drawer(hidden, output, caps.uniform_hidden, losses, dts, max_hidden, max_width, max_in,
                          _L2 if caps.regularizer else _NO_L2)
    return _specs(drawer)


def skip_undeclared(impl, record, check: str, reason: str | None, **verdict) -> None:
    """Work outside the declaration is skipped, not passed: one not_checkable verdict for the
    report ("not declared: ..."), recorded before pytest.skip (the verdict travels in the test's
    user_properties, which its teardown report still carries). Nothing when reason is None."""
    if not reason:
        return
    import pytest
    from reference.verdict import NOT_CHECKABLE, Verdict
    message = f"not declared: {reason}"
    record(Verdict(check, NOT_CHECKABLE, implementation=impl.name, message=message, **verdict))
    pytest.skip(message)
