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

The harness only generates what `capabilities` declares, and reports what it left unchecked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reference.spec import ACTIVATIONS, DTYPES, LOSSES, NetworkSpec


@dataclass(frozen=True)
class Capabilities:
    activations: frozenset = frozenset(ACTIVATIONS)
    losses: frozenset = frozenset(LOSSES)
    layer_kinds: frozenset = frozenset({"dense", "maxout"})
    dtypes: frozenset = frozenset(DTYPES)
    regularizer: bool = True
    intermediates: bool = False
    perceptron: bool = False

    def __post_init__(self):
        for name in ("activations", "losses", "layer_kinds", "dtypes"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        if "maxout" in self.layer_kinds:
            object.__setattr__(self, "activations", self.activations | {"maxout"})
        else:
            object.__setattr__(self, "activations", self.activations - {"maxout"})

    def supports(self, spec: NetworkSpec) -> str | None:
        """None if the spec is inside what is declared, else the reason it is not."""
        acts = {l.activation for l in spec.layers}
        if not acts <= self.activations:
            return f"activation(s) {sorted(acts - self.activations)} not declared"
        if spec.loss not in self.losses:
            return f"loss {spec.loss!r} not declared"
        if spec.dtype not in self.dtypes:
            return f"dtype {spec.dtype} not declared"
        if spec.l2 and not self.regularizer:
            return "l2 regularizer not declared"
        return None

    def unchecked(self) -> list[str]:
        """The parts of backcheck's vocabulary this implementation does not declare."""
        out = []
        for what, have, allv in (("activation", self.activations, set(ACTIVATIONS)),
                                 ("loss", self.losses, set(LOSSES)), ("dtype", self.dtypes, set(DTYPES))):
            out += [f"{what} {n}" for n in sorted(allv - set(have))]
        if not self.regularizer:
            out.append("l2 regularizer")
        if not self.intermediates:
            out.append("per-layer intermediates")
        if not self.perceptron:
            out.append("perceptron")
        return out

    def to_dict(self) -> dict:
        return {k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in vars(self).items()}


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
