"""The plug-in protocol: what an implementation under test provides.

An implementation is any object with

    name: str
    capabilities: Capabilities
    gradients(spec, params, X, Y) -> (cost, grads)

where params and grads are lists of (W (n_out, n_in), b (n_out,)) pairs in the spec's dtype and
cost is the batch mean of per-sample losses plus spec.l2 * 1/2 * sum ||W||^2 (DEVELOPERS.md).
Optional methods, declared in `capabilities`:

    intermediates(spec, params, X, Y) -> Intermediates   # per-layer pre-activations, activations, deltas
    perceptron(X, y, max_epochs) -> PerceptronResult      # see reference.perceptron

The harness only generates what `capabilities` declares (`Capabilities.supports` is the one
decision every generator goes through), and reports what it left unchecked (`unchecked()`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reference.spec import ACTIVATIONS, DTYPES, LOSSES, NetworkSpec


class _Any:
    """`ANY`: an activation accepts any finite parameter (the property suite draws its table of
    parameters plus the default). One instance, pickled by reference so that it stays `is ANY`
    across the isolation worker's pipe; written "any" in to_dict(), which the constructor accepts."""

    _one = None

    def __new__(cls):
        if cls._one is None:
            cls._one = super().__new__(cls)
        return cls._one

    def __repr__(self):
        return "ANY"

    def __reduce__(self):
        return "ANY"


ANY = _Any()

PARAMETRIZED = tuple(a for a, default in ACTIVATIONS.items() if default is not None)
_KINDS = ("dense", "maxout")


def _names(value, what: str) -> frozenset:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Mapping):
        raise TypeError(f"Capabilities: {what} takes names (activation parameters go in `activations`)")
    return frozenset(value)


def _param_set(name: str, value):
    """One activation's declared parameter(s) -> ANY or a frozenset of floats."""
    default = ACTIVATIONS[name]
    if default is None:   # None, ANY or nothing: there is no parameter to choose
        if not (value is None or value is ANY or value == "any" or value == frozenset()):
            raise ValueError(f"Capabilities: activation {name!r} takes no parameter, got {value!r}")
        return frozenset()
    if value is None:
        return frozenset({float(default)})
    if value is ANY or (isinstance(value, str) and value.lower() == "any"):
        return ANY
    values = value if isinstance(value, (set, frozenset, tuple, list)) else (value,)
    try:
        out = frozenset(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"Capabilities: {name} parameters must be numbers, None or ANY, got {value!r}") from None
    if not out or not all(math.isfinite(v) for v in out):
        raise ValueError(f"Capabilities: {name} parameters must be finite and at least one, got {value!r}")
    return out


def _fmt(values) -> str:
    return ", ".join(f"{v:g}" for v in sorted(values))


def _listed(names) -> str:
    """Names in the vocabulary's order (ACTIVATIONS, LOSSES, DTYPES), comma-separated."""
    order = {n: i for i, n in enumerate([*ACTIVATIONS, *LOSSES, *DTYPES])}
    return ", ".join(sorted(names, key=lambda n: order.get(n, len(order)))) or "none"


@dataclass(frozen=True)
class Capabilities:
    """What an implementation declares it can do; the harness generates nothing else.

    activations: a set of names (each at its DEFAULT parameter, reference.spec.ACTIVATIONS), or
        a mapping name -> None (the default), a number, a collection of numbers, or ANY.
        Stored as the frozenset of names; `params(name)` gives the parameters. The default
        (None) is every activation with ANY parameter.
    hidden_activations / output_activations: the names allowed in hidden layers / the output
        layer (None: all of `activations`).
    uniform_hidden: every hidden layer uses the same activation and parameter (scikit-learn).
    layer_kinds: "dense" and/or "maxout" (None: "dense", plus "maxout" if it is an activation);
        a maxout layer is the activation "maxout", so each kind filters `activations`.
    activation_params: filled from the mapping form (and carried by dataclasses.replace);
        a mapping name -> "any" or [numbers] is accepted too (to_dict()'s form).
    """

    activations: Any = None
    losses: frozenset = frozenset(LOSSES)
    layer_kinds: Any = None
    dtypes: frozenset = frozenset(DTYPES)
    regularizer: bool = True
    intermediates: bool = False
    perceptron: bool = False
    hidden_activations: frozenset | None = None
    output_activations: frozenset | None = None
    uniform_hidden: bool = False
    activation_params: Any = None

    def __post_init__(self):
        acts = self.activations
        if acts is None:
            acts = {a: ANY for a in ACTIVATIONS}
        elif isinstance(acts, str):
            acts = {acts}
        given = dict(acts) if isinstance(acts, Mapping) else None
        names = frozenset(acts)
        unknown = sorted(n for n in names if n not in ACTIVATIONS)
        if unknown:
            raise ValueError(f"Capabilities: unknown activation(s) {unknown}; known: {', '.join(ACTIVATIONS)}")
        carried = dict(self.activation_params or ())   # replace() / to_dict() form
        kinds = self.layer_kinds
        kinds = frozenset({"dense"} | ({"maxout"} & names)) if kinds is None else _names(kinds, "layer_kinds")
        if not kinds <= set(_KINDS):
            raise ValueError(f"Capabilities: unknown layer kind(s) {sorted(kinds - set(_KINDS))}; known: dense, maxout")
        # a maxout layer is the activation "maxout": the kinds decide which names are possible
        names = frozenset(n for n in names if ("maxout" if n == "maxout" else "dense") in kinds) \
            | ({"maxout"} if "maxout" in kinds else set())
        params = [(n, _param_set(n, given.get(n) if given is not None else carried.get(n))) for n in sorted(names)]
        params = [(n, p) for n, p in params if n in PARAMETRIZED]   # every value checked, these kept
        set_ = object.__setattr__
        set_(self, "activations", names)
        set_(self, "activation_params", tuple(params))
        set_(self, "layer_kinds", kinds)
        for field in ("losses", "dtypes"):
            set_(self, field, _names(getattr(self, field), field))
        bad = sorted(self.losses - set(LOSSES)) + sorted(self.dtypes - set(DTYPES))
        if bad:
            raise ValueError(f"Capabilities: unknown loss(es) or dtype(s) {bad}; known: "
                             f"{', '.join(LOSSES)}; {', '.join(DTYPES)}")
        for field in ("hidden_activations", "output_activations"):
            value = getattr(self, field)
            if value is not None:
                value = _names(value, field)
                if "maxout" in value and "maxout" not in kinds:
                    value = value - {"maxout"}
                if not value <= names:
                    raise ValueError(f"Capabilities: {field} {sorted(value - names)} not among the "
                                     f"declared activations ({_listed(names)})")
                set_(self, field, None if value == names else value)   # equal declarations compare equal
        for field in ("regularizer", "intermediates", "perceptron", "uniform_hidden"):
            set_(self, field, bool(getattr(self, field)))

    # --- presets ---------------------------------------------------------------------------

    @classmethod
    def everything(cls, **kw) -> "Capabilities":
        """The whole network vocabulary: every activation with ANY parameter, both layer kinds,
        every loss and dtype, the regularizer (intermediates / perceptron: pass them)."""
        return cls(**{"activations": {a: ANY for a in ACTIVATIONS}, **kw})

    @classmethod
    def sklearn_style(cls, hidden=("identity", "relu", "tanh", "sigmoid"), output="identity",
                      losses=("mse",), **kw) -> "Capabilities":
        """scikit-learn's MLP structure: one activation from `hidden` for all hidden layers, the
        output activation(s) `output`. hidden / output: names, or mappings with parameters."""
        return cls(**{"activations": _merge(hidden, output), "hidden_activations": _keys(hidden),
                      "output_activations": _keys(output), "uniform_hidden": True, "losses": losses, **kw})

    @classmethod
    def uniform(cls, activation, output="identity", losses=("mse",), **kw) -> "Capabilities":
        """"`activation` everywhere": that one hidden activation in every hidden layer, the
        output activation(s) `output`."""
        return cls.sklearn_style(hidden=activation, output=output, losses=losses, **kw)

    # --- the one gate ----------------------------------------------------------------------

    def params(self, name: str):
        """The declared parameters of an activation: ANY or a frozenset of floats (empty for
        an activation that takes none, or one that is not declared)."""
        return dict(self.activation_params).get(name, frozenset())

    def allowed(self, position: str) -> frozenset:
        """The activation names allowed at a position, "hidden" or "output"."""
        chosen = self.hidden_activations if position == "hidden" else self.output_activations
        return self.activations if chosen is None else chosen

    def supports(self, spec) -> str | None:
        """None if the work is inside the declaration, else a one-line reason naming the part
        that is not declared. `spec`: a NetworkSpec (activations with their parameters per
        hidden / output position, uniform hidden layers, loss, dtype, l2 only with the
        regularizer), or the name of an optional method, "intermediates" or "perceptron"."""
        if isinstance(spec, str):
            if spec not in ("intermediates", "perceptron"):
                raise ValueError(f"supports: expected a NetworkSpec, 'intermediates' or 'perceptron', got {spec!r}")
            return None if getattr(self, spec) else ("per-layer intermediates" if spec == "intermediates"
                                                      else "perceptron")
        for j, layer in enumerate(spec.layers, start=1):
            position = "output" if j == spec.depth else "hidden"
            reason = self._layer_reason(layer, position, j)
            if reason:
                return reason
        hidden = {(l.activation, l.param, l.pieces) for l in spec.layers[:-1]}
        if self.uniform_hidden and len(hidden) > 1:
            used = ", ".join(dict.fromkeys(l.describe().partition(":")[2] for l in spec.layers[:-1]))
            return f"hidden layers with different activations ({used}; declared: one for all hidden layers)"
        if spec.loss not in self.losses:
            return f"loss {spec.loss!r} (declared: {_listed(self.losses)})"
        if spec.dtype not in self.dtypes:
            return f"dtype {spec.dtype} (declared: {_listed(self.dtypes)})"
        if spec.l2 and not self.regularizer:
            return f"l2 regularizer (l2={spec.l2:g}; declared: none)"
        return None

    def _layer_reason(self, layer, position: str, j: int) -> str | None:
        act, where = layer.activation, "the output layer" if position == "output" else f"hidden layer {j}"
        if act not in self.activations:
            return f"activation {act!r} in {where} (declared: {_listed(self.activations)})"
        if act not in self.allowed(position):
            return f"activation {act!r} in {where} (declared {position}: {_listed(self.allowed(position))})"
        allowed = self.params(act)
        if act in PARAMETRIZED and allowed is not ANY and layer.param not in allowed:
            return f"{act} parameter {layer.param:g} in {where} (declared: {_fmt(allowed)})"
        return None

    def unchecked(self) -> list[str]:
        """The parts of backcheck's vocabulary left unchecked, one compact line per kind."""
        out = []
        missing = [a for a in ACTIVATIONS if a not in self.activations]
        if missing:
            out.append(f"activation{'s' * (len(missing) > 1)} {', '.join(missing)}")
        for name, allowed in self.activation_params:
            if allowed is not ANY:
                out.append(f"{name} parameters other than {_fmt(allowed)}")
        for position in ("hidden", "output"):
            chosen = self.allowed(position)
            if chosen != self.activations:
                out.append(f"{position} activations other than {_listed(chosen)}" if chosen else
                           f"networks with {position} layers")
        if self.uniform_hidden and self._hidden_choices() > 1:
            out.append("hidden layers with different activations")
        for one, many, have, vocab in (("loss", "losses", self.losses, LOSSES),
                                       ("dtype", "dtypes", self.dtypes, DTYPES)):
            left = [n for n in vocab if n not in have]
            if left:
                out.append(f"{one if len(left) == 1 else many} {', '.join(left)}")
        for flag, text in (("regularizer", "l2 regularizer"), ("intermediates", "per-layer intermediates"),
                           ("perceptron", "perceptron")):
            if not getattr(self, flag):
                out.append(text)
        return out

    def _hidden_choices(self) -> int:
        """How many (activation, parameter) choices a hidden layer has (ANY: more than one)."""
        return sum(2 if p is ANY else max(1, len(p)) for p in map(self.params, self.allowed("hidden")))

    def to_dict(self) -> dict:
        """JSON-able, and Capabilities(**to_dict()) rebuilds the same declaration."""
        out = {}
        for k in ("activations", "losses", "layer_kinds", "dtypes", "hidden_activations", "output_activations"):
            v = getattr(self, k)
            out[k] = None if v is None else sorted(v)
        out["activation_params"] = {n: "any" if p is ANY else sorted(p) for n, p in self.activation_params}
        out.update({k: getattr(self, k) for k in ("uniform_hidden", "regularizer", "intermediates", "perceptron")})
        return out


def _keys(value) -> frozenset:
    return frozenset(value) if not isinstance(value, str) else frozenset({value})


def _merge(*parts) -> dict:
    """Activation declarations (names, or mappings with parameters) -> one mapping; the
    parameters of a name declared twice are united (ANY absorbs)."""
    out: dict = {}
    for part in parts:
        part = {part: None} if isinstance(part, str) else part if isinstance(part, Mapping) else dict.fromkeys(part)
        for name, value in part.items():
            if name not in ACTIVATIONS:
                raise ValueError(f"Capabilities: unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
            p = _param_set(name, value)
            if name in out:
                q = out[name]
                p = ANY if ANY in (p, q) else p | q
            out[name] = p
    return out


@dataclass
class Intermediates:
    """Per layer j = 1..L, batched over samples: pre-activations z^j (N, rows_j), activations
    h^j (N, width_j) and deltas dC/dz^j (N, rows_j), where C is the batch cost (mean included)."""
    pre_activations: list
    activations: list
    deltas: list


@runtime_checkable
class Implementation(Protocol):
    name: str
    capabilities: Capabilities

    def gradients(self, spec: NetworkSpec, params: list, X, Y) -> tuple[Any, list]: ...
