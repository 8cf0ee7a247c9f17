"""Hypothesis strategies for networks, parameters and batches — small and composable, each
usable on its own in a user's test:

    @given(case=cases())                       # a whole Case: spec + params + batch
    @given(spec=specs(losses=["mse"]))         # only architectures
    @given(layer=layers(activations=["tanh"]))

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

from properties.checks import Case
from reference.spec import ACTIVATIONS, DTYPES, LOSSES, Layer, NetworkSpec, one_hot

# output width by loss: 1 for the scalar-label losses, >= 2 classes for softmax
_OUT_WIDTH = {"logistic": (1, 1), "perceptron": (1, 1), "hinge": (1, 1), "bce": (1, 1),
              "softmax_ce": (2, 6), "mse": (1, 4), "l1": (1, 4)}
SCALES = {"unit": 1.0, "tiny": 1e-3, "large": 8.0}   # shrinks toward "unit"


def _key(names):
    return None if names is None else frozenset(names)


@lru_cache(maxsize=None)
def _activations(names):
    return st.sampled_from([a for a in ACTIVATIONS if names is None or a in names])


def activations(names=None):
    return _activations(_key(names))


# An activation with its parameter is one draw from a table ordered simplest first (every
# activation at its default, then the other parameters, then maxout with 3 pieces): shrinking
# moves toward index 0, and a layer costs two draws (width, activation), not up to four —
# Hypothesis's per-draw overhead is most of a small case's generation time.
_ALPHAS = {"leaky_relu": (0.01, 0.3), "elu": (0.1, 0.3, -0.5, 2.0), "generalized_relu": (0.1, 0.3, -0.5, 1.0, 2.0)}


def _layer_kinds(names) -> list:
    allowed = [a for a in ACTIVATIONS if names is None or a in names]
    kinds = [(a, None, 2 if a == "maxout" else 1) for a in allowed]
    kinds += [(a, alpha, 1) for a in allowed for alpha in _ALPHAS.get(a, ())]
    kinds += [("maxout", None, 3)] if "maxout" in allowed else []
    return kinds


@lru_cache(maxsize=None)
def _kinds(names):
    return st.sampled_from(_layer_kinds(names))


def _draw_layer(draw, width_st, kinds_st) -> Layer:
    width = draw(width_st)
    act, alpha, pieces = draw(kinds_st)
    return Layer(width, act, alpha=alpha, pieces=pieces)


def layers(width=st.integers(1, 16), activations=None):
    """One layer: a width and an activation with its parameter (maxout with 2-3 pieces)."""
    kinds = _kinds(_key(activations))
    return st.composite(lambda draw: _draw_layer(draw, width, kinds))()


def specs(activations=None, losses=None, dtypes=("float64",), max_hidden=4, max_width=16, max_in=16,
          l2=None):
    """A network: input width 1-max_in, 1..max_hidden hidden layers of width 1-max_width, an
    output layer sized for the loss, one activation per layer. (Strategies are built once per
    argument set: building them per draw would cost more than the draw itself.)"""
    return _specs(_spec_drawer(_key(activations), _key(losses), tuple(dtypes), max_hidden, max_width, max_in,
                               l2 if l2 is not None else _L2))


@lru_cache(maxsize=None)
def _specs(drawer):
    strategy = st.composite(drawer)()
    _DRAWERS[strategy] = drawer
    return strategy


_DRAWERS: dict = {}  # specs() strategy -> its draw function, which cases() inlines


_L2 = st.sampled_from([0.0, 0.0, 0.1, 1e-3])


@lru_cache(maxsize=None)
def _spec_drawer(activations, losses, dtypes, max_hidden, max_width, max_in, l2):
    """draw -> NetworkSpec; cases() calls it inside its own draw (a nested composite per spec
    would add its overhead to every example)."""
    loss_st = st.sampled_from([l for l in LOSSES if losses is None or l in losses])
    n_in_st, n_hidden_st = st.integers(1, max_in), st.integers(1 if max_hidden else 0, max_hidden)
    width_st, kinds_st = st.integers(1, max_width), _kinds(activations)
    out_width = {loss: st.integers(*_OUT_WIDTH[loss]) for loss in LOSSES}
    dtype_st = st.sampled_from([d for d in DTYPES if d in dtypes])

    def draw_spec(draw) -> NetworkSpec:
        loss = draw(loss_st)
        n_in = draw(n_in_st)
        hidden = [_draw_layer(draw, width_st, kinds_st) for _ in range(draw(n_hidden_st))]
        out = _draw_layer(draw, out_width[loss], kinds_st)
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


_BATCH = st.integers(1, 32)


@lru_cache(maxsize=None)
def _cases(spec_st, batch_st, scales):
    draw_spec = _DRAWERS.get(spec_st, lambda draw: draw(spec_st))
    # (scale, zeros) in one draw, shrinking toward unit scale without zeros
    setting_st = st.sampled_from([(s, z) for z in (False, True) for s in scales])
    seed_st = st.integers(0, 2 ** 32 - 1)

    @st.composite
    def draw_case(draw) -> Case:
        spec = draw_spec(draw)
        n = draw(batch_st)
        scale, zeros = draw(setting_st)
        seed = draw(seed_st)
        rng = np.random.default_rng(seed)
        params = params_for(spec, rng, SCALES[scale], zeros)
        X = rng.standard_normal((n, spec.n_in))
        Y = targets(spec, rng, n)
        return Case.make(spec, params, X, Y, label=f"seed={seed} scale={scale}{' zeros' if zeros else ''}",
                         direction_seed=seed)
    return draw_case()


@lru_cache(maxsize=None)
def _cases_for(capabilities, loss):
    return cases_for(capabilities, loss, _cached=False)


def cases_for(capabilities, loss: str | None = None, _cached=True, **kwargs):
    """Cases inside what an implementation declares: activations, losses, dtypes, regularizer,
    and for layered libraries (adapters.LayeredCapabilities) one hidden activation and the
    declared output activations."""
    if _cached and not kwargs:
        return _cases_for(capabilities, loss)
    losses = capabilities.losses if loss is None else capabilities.losses & {loss}
    if not capabilities.regularizer:
        kwargs.setdefault("l2", st.just(0.0))
    if getattr(capabilities, "uniform_hidden", False) or getattr(capabilities, "output_activations", None):
        kwargs.setdefault("spec", layered_specs(capabilities, losses, kwargs))
    return cases(activations=capabilities.activations, losses=losses, dtypes=tuple(capabilities.dtypes), **kwargs)


@st.composite
def layered_specs(draw, capabilities, losses, kwargs):
    """specs() with every hidden layer sharing one activation, the output's from the declared set."""
    hidden = draw(activations(capabilities.activations))
    out = sorted(capabilities.output_activations or capabilities.activations)
    spec = draw(specs(activations=capabilities.activations, losses=losses,
                      dtypes=tuple(capabilities.dtypes), l2=kwargs.get("l2", st.sampled_from([0.0, 0.1]))))
    uniform = getattr(capabilities, "uniform_hidden", False)
    layers = [l if not uniform else Layer(l.width, hidden) if hidden != "maxout" else Layer(l.width, "maxout", pieces=2)
              for l in spec.layers[:-1]]
    last = spec.layers[-1]
    if last.activation not in out:
        last = Layer(last.width, draw(st.sampled_from(out)))
    return spec.with_(layers=tuple(layers) + (last,))
