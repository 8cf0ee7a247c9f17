"""The spec vocabulary shared by every part of backcheck: networks, parameters, batches.

Conventions (DEVELOPERS.md): layer j has W of shape (n_out, n_in) and b of shape (n_out,);
a batch X is (N, n_in); targets Y are (N, n_out); the cost is the mean over the batch of the
per-sample loss (summed over output units) plus l2 * 1/2 * sum ||W||^2 (weights only).

A maxout layer of width m with k pieces has W of shape (m*k, n_in): unit i takes the max of
rows i*k .. i*k+k-1 (seed 004: g(z)_i = max_{j in G(i)} z_j, with contiguous groups).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Sequence

import numpy as np


class SpecError(ValueError):
    """A malformed network spec, parameter set or batch; the message names the field."""


# name -> default parameter (None: the activation takes none)
ACTIVATIONS: dict[str, float | None] = {
    "identity": None,
    "relu": None,
    "leaky_relu": 0.1,        # seed 004: max(0.1x, x)
    "abs": None,              # generalized ReLU with alpha = -1 (absolute value rectification)
    "generalized_relu": 0.0,  # seed 004: max(0, z) + alpha * min(0, z)
    "sigmoid": None,
    "tanh": None,
    "softplus": None,
    "elu": 1.0,
    "maxout": None,           # k affine pieces per unit, see Layer.pieces
}

# name -> the target domain it accepts
LOSSES: dict[str, str] = {
    "mse": "real",            # 1/2 (y - yhat)^2 (seeds 000, 002)
    "l1": "real",             # |y - yhat|
    "logistic": "pm1",        # log(1 + exp(-y yhat)), y in {-1, 1}
    "perceptron": "pm1",      # max(0, -y yhat)
    "hinge": "pm1",           # max(0, 1 - y yhat) (seed 003)
    "bce": "01",              # zeta((1 - 2y) z), y in {0, 1}, z a logit (seed 004)
    "softmax_ce": "simplex",  # logsumexp(z) - sum_k y_k z_k, rows of y on the simplex (seed 004)
}

# Where each activation / loss is not differentiable, as a function of its argument.
# Used by the kink detector: a pre-activation (or loss argument) within the FD stencil of
# one of these points makes an FD comparison meaningless at that entry.
KINKED_ACTIVATIONS = {"relu", "leaky_relu", "abs", "generalized_relu", "maxout"}  # elu too, unless alpha == 1
# (the reference also treats elu's 0 as a kink for finite differences: f'' jumps there even at alpha = 1)
KINKED_LOSSES = {"l1", "perceptron", "hinge"}
DTYPES = ("float64", "float32")


@dataclass(frozen=True)
class Layer:
    width: int
    activation: str = "identity"
    alpha: float | None = None   # leaky_relu slope, generalized_relu alpha, elu alpha
    pieces: int = 1              # maxout: k >= 2 affine pieces per unit

    @property
    def param(self) -> float:
        """The activation's parameter with the default filled in (0.0 where it takes none)."""
        if self.activation == "abs":
            return -1.0
        if self.activation == "relu":
            return 0.0
        if self.alpha is not None:
            return float(self.alpha)
        default = ACTIVATIONS.get(self.activation)
        return 0.0 if default is None else float(default)

    @property
    def rows(self) -> int:
        """Number of rows of W (and entries of b): width * pieces."""
        return self.width * self.pieces

    @property
    def kinked(self) -> bool:
        if self.activation == "elu":
            return self.param != 1.0
        if self.activation == "generalized_relu":
            return self.param != 1.0
        return self.activation in KINKED_ACTIVATIONS

    def describe(self) -> str:
        act = self.activation
        if self.activation == "maxout":
            act = f"maxout{self.pieces}"
        elif self.alpha is not None:
            act = f"{act}({self.alpha:g})"
        return f"{self.width}:{act}"


@dataclass(frozen=True)
class NetworkSpec:
    n_in: int
    layers: tuple[Layer, ...]
    loss: str = "mse"
    l2: float = 0.0
    dtype: str = "float64"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        validate_spec(self)

    @property
    def n_out(self) -> int:
        return self.layers[-1].width

    @property
    def depth(self) -> int:
        return len(self.layers)

    def shapes(self) -> list[tuple[tuple[int, int], tuple[int]]]:
        """[(W shape, b shape)] per layer."""
        return list(_shapes(self))

    @property
    def n_params(self) -> int:
        return sum(w[0] * w[1] + b[0] for w, b in self.shapes())

    def describe(self) -> str:
        """Short human form: 3 -> 4:tanh -> 1:identity | mse, l2=0.1, float32."""
        s = " -> ".join([str(self.n_in)] + [l.describe() for l in self.layers])
        extra = [self.loss]
        if self.l2:
            extra.append(f"l2={self.l2:g}")
        if self.dtype != "float64":
            extra.append(self.dtype)
        return f"{s} | {', '.join(extra)}"

    def to_dict(self) -> dict:
        return {
            "n_in": self.n_in,
            "layers": [
                {k: v for k, v in vars(l).items() if not (k == "alpha" and v is None) and not (k == "pieces" and v == 1)}
                for l in self.layers
            ],
            "loss": self.loss, "l2": self.l2, "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkSpec":
        return cls(n_in=d["n_in"], layers=tuple(Layer(**l) for l in d["layers"]),
                   loss=d.get("loss", "mse"), l2=d.get("l2", 0.0), dtype=d.get("dtype", "float64"))

    def with_(self, **changes) -> "NetworkSpec":
        return replace(self, **changes)

    def repr_code(self) -> str:
        """Python source that rebuilds this spec (used in reproducers)."""
        layers = ", ".join(
            "Layer(" + ", ".join(
                [repr(l.width), repr(l.activation)]
                + ([f"alpha={l.alpha!r}"] if l.alpha is not None else [])
                + ([f"pieces={l.pieces}"] if l.pieces != 1 else [])) + ")"
            for l in self.layers)
        extra = "" if not self.l2 else f", l2={self.l2!r}"
        extra += "" if self.dtype == "float64" else f", dtype={self.dtype!r}"
        return f"NetworkSpec(n_in={self.n_in}, layers=({layers},), loss={self.loss!r}{extra})"


def mlp(n_in: int, widths: Sequence[int], activations: Sequence[str] | str, loss: str = "mse",
        l2: float = 0.0, dtype: str = "float64") -> NetworkSpec:
    """Convenience: mlp(3, [4, 1], ["tanh", "identity"], "mse")."""
    if isinstance(activations, str):
        activations = [activations] * len(widths)
    if len(activations) != len(widths):
        raise SpecError(f"activations: {len(activations)} given for {len(widths)} layers")
    return NetworkSpec(n_in, tuple(Layer(w, a) for w, a in zip(widths, activations)), loss, l2, dtype)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def validate_spec(spec: NetworkSpec) -> None:
    if not _is_int(spec.n_in) or spec.n_in < 1:
        raise SpecError(f"n_in: must be a positive integer, got {spec.n_in!r}")
    if len(spec.layers) == 0:
        raise SpecError("layers: a network needs at least one layer")
    for j, layer in enumerate(spec.layers, start=1):
        where = f"layers[{j - 1}] (layer {j})"
        if not isinstance(layer, Layer):
            raise SpecError(f"{where}: expected a Layer, got {type(layer).__name__}")
        if not _is_int(layer.width) or layer.width < 1:
            raise SpecError(f"{where}.width: must be a positive integer, got {layer.width!r}")
        if layer.activation not in ACTIVATIONS:
            raise SpecError(f"{where}.activation: unknown activation {layer.activation!r}; "
                            f"known: {', '.join(ACTIVATIONS)}")
        if layer.alpha is not None:
            if ACTIVATIONS[layer.activation] is None:
                raise SpecError(f"{where}.alpha: activation {layer.activation!r} takes no parameter")
            if not math.isfinite(float(layer.alpha)):
                raise SpecError(f"{where}.alpha: must be finite, got {layer.alpha!r}")
        if layer.activation == "maxout":
            if not _is_int(layer.pieces) or layer.pieces < 2:
                raise SpecError(f"{where}.pieces: maxout needs k >= 2 pieces, got {layer.pieces!r}")
        elif layer.pieces != 1:
            raise SpecError(f"{where}.pieces: only a maxout layer has pieces, got {layer.pieces!r}")
    if spec.loss not in LOSSES:
        raise SpecError(f"loss: unknown loss {spec.loss!r}; known: {', '.join(LOSSES)}")
    if spec.loss == "softmax_ce" and spec.n_out < 2:
        raise SpecError(f"loss: softmax_ce needs an output layer of width >= 2, got {spec.n_out}")
    try:
        l2 = float(spec.l2)
    except (TypeError, ValueError):
        raise SpecError(f"l2: must be a number, got {spec.l2!r}") from None
    if not (l2 >= 0 and math.isfinite(l2)):
        raise SpecError(f"l2: must be finite and >= 0, got {spec.l2!r}")
    if spec.dtype not in DTYPES:
        raise SpecError(f"dtype: must be one of {DTYPES}, got {spec.dtype!r}")


Params = list  # [(W, b), ...]


@lru_cache(maxsize=4096)
def _shapes(spec: NetworkSpec) -> tuple:
    """NetworkSpec.shapes, worked out once per spec (the checks ask for it many times a case)."""
    out, n_prev = [], spec.n_in
    for layer in spec.layers:
        out.append(((layer.rows, n_prev), (layer.rows,)))
        n_prev = layer.width
    return tuple(out)


def check_params(spec: NetworkSpec, params, who: str = "params") -> list[tuple[np.ndarray, np.ndarray]]:
    """Validate a parameter list against the spec; return it as a list of (W, b) ndarrays."""
    shapes = spec.shapes()
    try:
        n = len(params)
    except TypeError:
        raise SpecError(f"{who}: expected a list of (W, b) pairs, got {type(params).__name__}") from None
    if n != len(shapes):
        raise SpecError(f"{who}: {n} layers given, the spec has {len(shapes)}")
    out = []
    for j, (pair, (ws, bs)) in enumerate(zip(params, shapes), start=1):
        try:
            W, b = pair
        except (TypeError, ValueError):
            raise SpecError(f"{who}[{j - 1}] (layer {j}): expected a (W, b) pair") from None
        for name, arr, shape in (("W", W, ws), ("b", b, bs)):
            if not isinstance(arr, np.ndarray):
                raise SpecError(f"{who}[{j - 1}] (layer {j}) {name}: expected a numpy array, got {type(arr).__name__}")
            if arr.shape != shape:
                raise SpecError(f"{who}[{j - 1}] (layer {j}) {name}: shape {arr.shape}, expected {shape}")
        out.append((W, b))
    return out


def check_batch(spec: NetworkSpec, X, Y) -> None:
    """Validate a batch against the spec and the loss's target domain."""
    for name, arr in (("X", X), ("Y", Y)):
        if not isinstance(arr, np.ndarray):
            raise SpecError(f"{name}: expected a numpy array, got {type(arr).__name__}")
        if arr.ndim != 2:
            raise SpecError(f"{name}: expected a 2-d array (N, width), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise SpecError(f"{name}: contains NaN or inf")
    if X.shape[1] != spec.n_in:
        raise SpecError(f"X: shape {X.shape}, expected (N, {spec.n_in}) for n_in={spec.n_in}")
    if X.shape[0] < 1:
        raise SpecError("X: the batch is empty")
    if Y.shape != (X.shape[0], spec.n_out):
        raise SpecError(f"Y: shape {Y.shape}, expected {(X.shape[0], spec.n_out)} (N, n_out)")
    domain = LOSSES[spec.loss]
    # == and a difference, not np.isin and np.allclose: the same tests on a finite Y, at a tenth
    # of their cost (every case the suite checks passes here twice, in the harness and in the
    # built-in implementation)
    if domain == "pm1" and not np.all((Y == -1.0) | (Y == 1.0)):
        raise SpecError(f"Y: loss {spec.loss!r} takes labels in {{-1, 1}}, got values {np.unique(Y)[:5]}")
    if domain == "01" and not np.all((Y == 0.0) | (Y == 1.0)):
        raise SpecError(f"Y: loss {spec.loss!r} takes labels in {{0, 1}}, got values {np.unique(Y)[:5]}")
    if domain == "simplex" and (np.any(Y < 0) or not np.all(np.abs(Y.sum(axis=1) - 1.0) <= 1e-12)):
        raise SpecError(f"Y: loss {spec.loss!r} takes rows on the probability simplex (one-hot labels)")


def one_hot(labels, n_classes: int, dtype=np.float64) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or np.any(labels < 0) or np.any(labels >= n_classes):
        raise SpecError(f"labels: expected integers in [0, {n_classes}), got {labels!r}")
    return np.eye(n_classes, dtype=dtype)[labels]


def init_params(spec: NetworkSpec, rng: np.random.Generator, scale: float = 1.0) -> list:
    """Gaussian parameters with 1/sqrt(n_in) scaling (times `scale`), in the spec's dtype."""
    dt = np.dtype(spec.dtype)
    return [((rng.standard_normal(ws) * scale / math.sqrt(ws[1])).astype(dt),
             (rng.standard_normal(bs) * scale * 0.1).astype(dt)) for ws, bs in spec.shapes()]


def random_batch(spec: NetworkSpec, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch with targets valid for the spec's loss."""
    dt = np.dtype(spec.dtype)
    X = rng.standard_normal((n, spec.n_in)).astype(dt)
    domain = LOSSES[spec.loss]
    if domain == "real":
        Y = rng.standard_normal((n, spec.n_out))
    elif domain == "pm1":
        Y = rng.choice([-1.0, 1.0], size=(n, spec.n_out))
    elif domain == "01":
        Y = rng.choice([0.0, 1.0], size=(n, spec.n_out))
    else:
        Y = one_hot(rng.integers(0, spec.n_out, size=n), spec.n_out)
    return X, Y.astype(dt)


def flatten(params) -> np.ndarray:
    return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in params])


def unflatten(spec: NetworkSpec, theta: np.ndarray) -> list:
    out, i = [], 0
    for ws, bs in spec.shapes():
        nW, nb = ws[0] * ws[1], bs[0]
        out.append((theta[i:i + nW].reshape(ws), theta[i + nW:i + nW + nb]))
        i += nW + nb
    return out


def param_index(spec: NetworkSpec, flat_index: int) -> tuple[int, str, tuple]:
    """Flat index -> (layer 1-based, 'W' or 'b', index within that array)."""
    i = int(flat_index)
    for j, (ws, bs) in enumerate(spec.shapes(), start=1):
        nW = ws[0] * ws[1]
        if i < nW:
            return j, "W", tuple(int(v) for v in np.unravel_index(i, ws))
        i -= nW
        if i < bs[0]:
            return j, "b", (i,)
        i -= bs[0]
    raise IndexError(flat_index)
