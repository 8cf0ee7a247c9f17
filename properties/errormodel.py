"""The error model: how far a *correct* implementation's gradient may be from the exact one.

For every gradient entry g_i = Σ_terms (products along backprop paths) the rounding error of a
correct implementation in a dtype with unit roundoff u is bounded, to first order, by

    tol_i = c · u · A_i  +  S_i

* A_i is the same entry computed on absolute values — the backward pass run again with |W|,
  |f'(z)|, |h| and the loss derivative's *terms* (|y| + |t| for y - t, p + t for softmax - t):
  A_i = Σ|terms|. Its ratio to |g_i| is the entry's condition number κ_i = Σ|terms| / |Σ terms|:
  an entry that is a sum of large terms cancelling to a small value carries their rounding
  error, not its own size's. c = 4 (L + 2) + 2 log2(N H) counts a few roundings per stage plus
  the summation depth over the batch and the widths.
* an underflow term c N tiny (tiny: the dtype's smallest normal number), since a float32
  implementation flushes to zero what float64 still resolves (e.g. σ(-100)).
* S_i is what saturation and the forward pass add. The outputs carry a forward error up to
  c u Zabs (Zabs = |W| |h| + |b| of the output layer), which the loss's curvature turns into an
  error of dloss/dy (1 for mse, σσ' for logistic/bce, 2p for softmax, 0 where piecewise linear). A correct implementation may compute tanh'
  as 1 - h² and sigmoid' as h (1 - h) from the *output*; near saturation that has an absolute
  error of up to ~3u in f' however small f' is. We charge 4u · |incoming| for every tanh/sigmoid
  unit, propagated down with |W|, |f'|. A smooth f' computed from z inherits the forward error
  of z, |δz| <= u c Zabs with Zabs = |W| |h| + |b|, times |f''/f'| <= 2 for every smooth
  activation of the vocabulary; and the forward error of h (<= u c Lip Zabs) multiplies δ.

Comparing two computations (implementation vs JAX) adds their tolerances: the reference is
float64 with the same model. The relative bound reported in a verdict is tol_i / (|a_i| + |b_i|).
"""
from __future__ import annotations

import numpy as np

from implementations.numpy_mlp import activation as _activation, maxout as _maxout, sigmoid
from reference.rounding import rounding_factor, unit_roundoff
from reference.spec import NetworkSpec

SAT_ACTS = {"sigmoid", "tanh"}       # may legitimately be differentiated from their output
SMOOTH_ACTS = {"sigmoid", "tanh", "softplus", "elu"}
SAT_ABS_ERROR = 4.0                  # |fl(1 - h²) - sech²| <= ~3u (h's own error doubled, one subtraction)
CURVATURE = 2.0                      # max |f''/f'| over the smooth activations (tanh: 2|tanh|)


def _loss_terms(loss: str, y, t):
    """|terms| of dloss/dy: the magnitude its rounding error is relative to."""
    if loss == "mse":
        return np.abs(y) + np.abs(t)
    if loss in ("l1", "perceptron", "hinge"):
        return np.abs(t) if loss != "l1" else np.ones_like(y)
    if loss == "logistic":
        return np.abs(t) * sigmoid(-t * y)
    if loss == "bce":
        s = 1 - 2 * t
        return sigmoid(s * y)
    if loss == "softmax_ce":
        m = y.max(axis=1, keepdims=True)
        p = np.exp(y - m)
        p /= p.sum(1, keepdims=True)
        return p + np.abs(t)
    raise ValueError(loss)


def _loss_curvature(loss: str, y, t):
    """|d(dloss/dy)/dy| per output (row sums of its absolute Jacobian for softmax): how an
    absolute error in y becomes an error in dloss/dy."""
    if loss == "mse":
        return np.ones_like(y)
    if loss == "logistic":
        return sigmoid(t * y) * sigmoid(-t * y) * t * t
    if loss == "bce":
        s = 1 - 2 * t
        return sigmoid(s * y) * sigmoid(-s * y)
    if loss == "softmax_ce":
        m = y.max(axis=1, keepdims=True)
        p = np.exp(y - m)
        return 2 * p / p.sum(1, keepdims=True)
    return np.zeros_like(y)  # piecewise linear: l1, perceptron, hinge


def gradient_tolerance(spec: NetworkSpec, params, X, Y, dtype=None):
    """(tol, A, delta_tol): per-entry absolute error bound of a correct implementation computing
    in `dtype` (default: the spec's) and the absolute-value gradient A, both flat in
    spec.flatten order; and per layer the error bound of the deltas dC/dz (N, rows)."""
    u = unit_roundoff(dtype or spec.dtype)
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    N = X.shape[0]
    c = rounding_factor(spec, N)
    hs, ds, zabs = [X], [], []
    for layer, (W, b) in zip(spec.layers, params):
        z = hs[-1] @ W.T + b
        zabs.append(np.abs(hs[-1]) @ np.abs(W).T + np.abs(b))
        h, d = _maxout(z, layer.pieces) if layer.activation == "maxout" else _activation(layer.activation, layer.param, z)
        hs.append(h), ds.append(d)
    M = _loss_terms(spec.loss, hs[-1], Y) / N          # |incoming| at the output
    z_out = zabs[-1]
    if spec.layers[-1].activation == "maxout":
        z_out = z_out.reshape(N, -1, spec.layers[-1].pieces).max(axis=2)
    # absolute error of the incoming: the outputs' forward error c u Zabs through the loss's curvature
    E = _loss_curvature(spec.loss, hs[-1], Y) * c * u * z_out / N
    A_parts, S_parts, delta_tol = [None] * spec.depth, [None] * spec.depth, [None] * spec.depth
    for k in reversed(range(spec.depth)):
        layer, (W, _) = spec.layers[k], params[k]
        if layer.activation == "maxout":
            M, E = np.repeat(M, layer.pieces, axis=1), np.repeat(E, layer.pieces, axis=1)
        d = np.abs(ds[k])
        delta_abs = d * M
        delta_err = d * E
        if layer.activation in SAT_ACTS:
            delta_err = delta_err + SAT_ABS_ERROR * u * M
        if layer.activation in SMOOTH_ACTS:
            delta_err = delta_err + CURVATURE * c * u * zabs[k] * delta_abs
        delta_tol[k] = c * u * delta_abs + delta_err
        h_prev = np.abs(hs[k])
        h_err = c * u * (zabs[k - 1] if k > 0 else 0 * h_prev)   # forward error of the layer's input
        if k > 0 and spec.layers[k - 1].activation == "maxout":
            h_err = h_err.reshape(h_err.shape[0], -1, spec.layers[k - 1].pieces).max(axis=2)
        A_parts[k] = (delta_abs.T @ h_prev + spec.l2 * np.abs(W), delta_abs.sum(0))
        S_parts[k] = (delta_err.T @ h_prev + delta_abs.T @ h_err, delta_err.sum(0))
        M, E = delta_abs @ np.abs(W), delta_err @ np.abs(W)
    A = np.concatenate([np.concatenate([a.ravel(), b.ravel()]) for a, b in A_parts])
    S = np.concatenate([np.concatenate([a.ravel(), b.ravel()]) for a, b in S_parts])
    # underflow: every product and sum may flush to zero below the dtype's smallest normal
    tiny = c * np.finfo(np.dtype(dtype or spec.dtype)).tiny * N
    return c * u * A + S + tiny, A, [d + tiny for d in delta_tol]


def cost_tolerance(spec: NetworkSpec, cost_abs: float, output_sensitivity: float, n: int, dtype=None) -> float:
    """Absolute error bound of a correct implementation's cost: c u (|C| + Σ|y dC/dy|), plus the
    dtype's underflow level (a float32 cost of 1e-232 is 0)."""
    dt = np.dtype(dtype or spec.dtype)
    c = rounding_factor(spec, n)
    return c * unit_roundoff(dt) * (abs(cost_abs) + output_sensitivity) + c * np.finfo(dt).tiny
