"""The error model: how far a *correct* implementation's gradient may be from the exact one.

For every gradient entry g_i = Σ_terms (products along backprop paths) the rounding error of a
correct implementation in a dtype with unit roundoff u is bounded, to first order, by

    tol_i = c · u · A_i  +  S_i  +  underflow

* A_i is the same entry computed on absolute values — the backward pass run again with |W|,
  |f'(z)|, |h| and the loss derivative's *terms* (see FORMULAS below): A_i = Σ|terms|. Its ratio
  to |g_i| is the entry's condition number κ_i = Σ|terms| / |Σ terms|: an entry that is a sum of
  large terms cancelling to a small value carries their rounding error, not its own size's.
  c = 4 (L + 2) + 2 log2(N H) counts a few roundings per stage plus the summation depth over the
  batch and the widths (reference.rounding).
* S_i is what the forward pass and saturation add. The forward error of a pre-activation is
  c u Zfwd, where Zfwd is the *propagated* magnitude: Zfwd_k = |W_k| |h_{k-1}| + |b_k| (the
  rounding of this layer's dot products, relative to their terms, not to |z|: cancellation inside
  z) plus |W_k| (Lip_{k-1} Zfwd_{k-1}) (the error the layer's input already carries, through the
  activation's slope). The outputs' forward error reaches dloss/dy through the loss's Jacobian,
  a smooth f'(z) through |f''/f'| <= 2, and dC/dW through the error of h.
* underflow: c N tiny (tiny: the dtype's smallest normal number), since a float32 implementation
  flushes to zero what float64 still resolves (e.g. σ(-100)); and c tiny on every delta dC/dz,
  carried down the backward pass like its other errors: a delta below tiny is flushed to zero by
  one correct implementation (XLA on the CPU) and kept subnormal by another (NumPy), and a large
  input |h| then multiplies the difference (bce's σ(-709) = 1.06e-308 times an h of -472 is a
  dC/dW of -5.0e-306 in NumPy, 0 in JAX).

FORMULAS — the derivative forms correct code really uses; the model bounds the worst of them, so
every one of them passes while a wrong derivative still fails (tests/zoo/ holds one of each):

  activation  forms found in practice                         what the model charges
  sigmoid     s(z) s(-z); s (1 - s) from the output h           18u |incoming| absolute (SAT_ABS_ERROR),
  tanh        sech² z; 1 - h² (textbook); (1 + h)(1 - h) (JAX)    whatever the size of f'
  elu         a e^z; expm1(z) + 1 (JAX's default rule for expm1); 18u |a| |incoming| absolute on z < 0
              h + a (from the output)
  softplus    s(z); e^z / (1 + e^z)                             relative: the curvature term
  (every smooth f: its value is off by up to LIBM_ULPS ulp, the libraries' transcendental functions)
  relu family exact 0/1/α                                        nothing (kinks are handled apart)
  loss        forms found in practice                         |terms| of dloss/dy (_loss_terms)
  mse         y - t                                              |y| + |t|
  logistic    -t s(-t y) ; s(y) - (1 + t)/2 (PyTorch-style)     s(y) + (1 + t)/2
  bce         (1 - 2t) s((1 - 2t) z) ; s(z) - t (PyTorch's       s(z) + t: s(z) - 1 cancels when the
              binary_cross_entropy_with_logits)                  true class is predicted strongly
  softmax_ce  softmax(z) - t                                     p + t
  l1, perceptron, hinge: exact ±1/0                               |t| (or 1)
  reduction: a batch mean by one division, or per-sample gradients accumulated then divided
  (textbook loops): the summation depth is in c.

Comparing two computations (implementation vs JAX) adds their tolerances: the reference is
float64 with the same model. The relative bound reported in a verdict is tol_i / (|a_i| + |b_i|).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from implementations.numpy_mlp import activation as _activation, loss as _loss, maxout as _maxout, sigmoid
from reference.rounding import rounding_factor, unit_roundoff
from reference.spec import NetworkSpec

SAT_ACTS = {"sigmoid", "tanh"}       # may legitimately be differentiated from their output
SMOOTH_ACTS = {"sigmoid", "tanh", "softplus", "elu"}
# The transcendental functions correct code calls (libm through NumPy, XLA's on the CPU through
# JAX and PyTorch's) are not correctly rounded: measured here, XLA's tanh is off by up to 7 ulp in
# float64 and 4.3 in float32, its expm1 by 5.6, sigmoid 3, softplus 4 (tests/test_errormodel.py
# measures them again). An activation's value carries LIBM_ULPS u |h| of its own.
LIBM_ULPS = 8.0
# f' from the output: |fl(1 - h²) - sech²| <= 2 |δh| + u with |δh| <= LIBM_ULPS u (and h (1 - h),
# expm1(z) + 1 alike): an absolute error whatever the size of f'
SAT_ABS_ERROR = 2 * LIBM_ULPS + 2
CURVATURE = 2.0                      # max |f''/f'| over the smooth activations (tanh: 2|tanh|)


def _loss_terms(loss: str, y, t):
    """|terms| of dloss/dy in the least accurate form correct code uses (FORMULAS): the
    magnitude its rounding error is relative to."""
    if loss == "mse":
        return np.abs(y) + np.abs(t)
    if loss in ("l1", "perceptron", "hinge"):
        return np.abs(t) if loss != "l1" else np.ones_like(y)
    if loss == "logistic":
        return sigmoid(y) + (1 + t) / 2
    if loss == "bce":
        return sigmoid(y) + t
    if loss == "softmax_ce":
        return _softmax(y) + np.abs(t)
    raise ValueError(loss)


def _softmax(y):
    p = np.exp(y - y.max(axis=1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _loss_error(loss: str, y, t, e):
    """An upper bound on |J| e, J the Jacobian of dloss/dy in y: how absolute errors e of the
    outputs become an error of dloss/dy. Softmax couples the outputs: dp_i/dz_j = p_i (δ_ij - p_j),
    so the error of p_i is p_i e_i + p_i Σ_j p_j e_j — a class with an exactly known logit still
    moves with the others' (through the log-sum-exp)."""
    if loss == "mse":
        return e
    if loss == "logistic":
        return sigmoid(t * y) * sigmoid(-t * y) * t * t * e
    if loss == "bce":
        return sigmoid(y) * sigmoid(-y) * e
    if loss == "softmax_ce":
        p = _softmax(y)
        return p * e + p * np.sum(p * e, axis=1, keepdims=True)
    return np.zeros_like(y)  # piecewise linear: l1, perceptron, hinge


def _slope_bound(layer, z, d, near):
    """|f'| as the error of z passes through the activation: the local slope, or the larger
    one-sided slope for a unit within its forward error of a kink (it may be on either side)."""
    if layer.activation == "maxout":
        return np.ones_like(z)
    slope = np.abs(d)
    if layer.kinked or layer.activation == "elu":
        slope = np.where(near, max(1.0, abs(layer.param)), slope)
    return slope


@dataclass
class Model:
    """The error model of one case in one dtype, flat in spec.flatten order where flat."""
    tol: np.ndarray          # per-entry absolute error bound of a correct gradient
    A: np.ndarray            # the absolute-value gradient Σ|terms|
    delta_tol: list          # per layer, the error bound of the deltas dC/dz (N, rows)
    zfwd_out: np.ndarray     # the outputs' propagated forward magnitudes (N, rows_L): error c u Zfwd
    z_err: list              # per layer, the forward error bound of z (N, rows): c u Zfwd + underflow
    h_err: list              # per layer, the forward error bound of h (N, width)
    cost_tol: float          # the cost's error bound from this pass alone (no reference needed)


def model(spec: NetworkSpec, params, X, Y, dtype=None) -> Model:
    """The error model of a correct implementation computing (params, X, Y) in `dtype` (default:
    the spec's); see the module docstring."""
    return model_many(spec, [params], [X], [Y], dtype)[0]


def model_many(spec: NetworkSpec, params_list, Xs, Ys, dtype=None) -> list[Model]:
    """`model` of several cases of one spec and batch size (the draws of one Hypothesis example,
    properties.test_properties) in one pass: the samples of all draws are stacked as rows, so the
    per-sample work (activations, loss terms, every elementwise step) runs once for all of them,
    and products and sums over samples are taken per draw. Its overhead is paid once, not per
    draw, and each draw's model is bit for bit the one it gets alone (tests/test_errormodel.py):
    a reproducer rerunning one case finds the suite's bounds exactly."""
    dt = np.dtype(dtype or spec.dtype)
    u = unit_roundoff(dt)
    S = len(params_list)
    Ws = [np.stack([np.asarray(p[k][0], np.float64) for p in params_list]) for k in range(spec.depth)]
    bs = [np.stack([np.asarray(p[k][1], np.float64) for p in params_list]) for k in range(spec.depth)]
    X = np.concatenate([np.asarray(x, np.float64) for x in Xs])    # (S N, n_in): draw s is rows s N ...
    Y = np.concatenate([np.asarray(y, np.float64) for y in Ys])
    N = X.shape[0] // S
    c = rounding_factor(spec, N)

    def draws(a):           # rows -> (S, N, columns)
        return a.reshape(S, N, -1)

    def rows(a):            # (S, N, columns) -> rows
        return a.reshape(S * N, -1)

    def times(a, B):        # each draw's rows times its own matrix (S, k, m)
        return rows(draws(a) @ B)

    def outer(a, b):        # Σ_n a[n]ᵀ b[n] per draw: (S, columns of a, columns of b)
        return np.swapaxes(draws(a), 1, 2) @ draws(b)

    def total(a):           # each draw's sum of all its entries: (S,)
        return a.reshape(S, -1).sum(axis=1)

    hs, ds, zfwd, hfwd = [X], [], [], [np.zeros_like(X)]
    for layer, W, b in zip(spec.layers, Ws, bs):
        Wt, absWt = np.swapaxes(W, 1, 2), np.swapaxes(np.abs(W), 1, 2)
        z = rows(draws(hs[-1]) @ Wt + b[:, None, :])
        zf = rows(draws(np.abs(hs[-1])) @ absWt + np.abs(b)[:, None, :] + draws(hfwd[-1]) @ absWt)
        h, d = _maxout(z, layer.pieces) if layer.activation == "maxout" else _activation(layer.activation, layer.param, z)
        slope = _slope_bound(layer, z, d, np.abs(z) <= c * u * zf)
        hf = slope * zf
        if layer.activation == "maxout":
            hf = hf.reshape(S * N, -1, layer.pieces).max(axis=2)
        own = LIBM_ULPS if layer.activation in SMOOTH_ACTS else 1.0   # f's own error: a few ulp of |h|
        hs.append(h), ds.append(d), zfwd.append(zf), hfwd.append(hf + own * np.abs(h) / c)
    M = _loss_terms(spec.loss, hs[-1], Y) / N          # |incoming| at the output
    z_out = zfwd[-1]
    if spec.layers[-1].activation == "maxout":
        z_out = z_out.reshape(S * N, -1, spec.layers[-1].pieces).max(axis=2)
    # the cost: its own terms, the loss's internal cancellation (|y| + |t| against each term of
    # dloss/dy) and the outputs' forward error through |dC/dz|
    squares = [total(W * W) for W in Ws]
    losses = total(np.abs(_loss(spec.loss, hs[-1], Y)[0]))
    d_out = np.abs(ds[-1]) * (np.repeat(M, spec.layers[-1].pieces, axis=1) if spec.layers[-1].activation == "maxout" else M)
    sens_out, sens_loss = total(d_out * zfwd[-1]), total(M * (np.abs(hs[-1]) + np.abs(Y)))
    cost_tols = []
    for s in range(S):
        reg = 0.5 * spec.l2 * sum(float(q[s]) for q in squares)
        cost_abs = float(losses[s]) / N + reg
        sens = float(sens_out[s]) + float(sens_loss[s])
        cost_tols.append(c * u * (cost_abs + sens) + c * np.finfo(dt).tiny)
    E = _loss_error(spec.loss, hs[-1], Y, c * u * z_out) / N   # absolute error of the incoming
    flush = c * np.finfo(dt).tiny   # a delta's underflow: flushed to zero or kept subnormal (docstring)
    A_parts, S_parts, delta_tol = [None] * spec.depth, [None] * spec.depth, [None] * spec.depth
    for k in reversed(range(spec.depth)):
        layer, W = spec.layers[k], Ws[k]
        if layer.activation == "maxout":
            M, E = np.repeat(M, layer.pieces, axis=1), np.repeat(E, layer.pieces, axis=1)
        d = np.abs(ds[k])
        delta_abs = d * M
        delta_err = d * E
        if layer.activation in SAT_ACTS:
            delta_err = delta_err + SAT_ABS_ERROR * u * M
        if layer.activation == "elu":   # expm1(z) + 1 or h + a: an absolute error ~u |a| on z < 0
            delta_err = delta_err + SAT_ABS_ERROR * u * abs(layer.param) * M * (ds[k] != 1)
        if layer.activation in SMOOTH_ACTS:
            delta_err = delta_err + CURVATURE * c * u * zfwd[k] * delta_abs
        delta_err = delta_err + flush
        delta_tol[k] = c * u * delta_abs + delta_err
        h_prev = np.abs(hs[k])
        h_err = c * u * hfwd[k]   # forward error of the layer's input
        A_parts[k] = (outer(delta_abs, h_prev) + spec.l2 * np.abs(W), draws(delta_abs).sum(axis=1))
        S_parts[k] = (outer(delta_err, h_prev) + outer(delta_abs, h_err), draws(delta_err).sum(axis=1))
        absW = np.abs(W)
        M, E = times(delta_abs, absW), times(delta_err, absW)

    def flat(parts):        # (S, P): each draw's entries in spec.flatten order
        return np.concatenate([x.reshape(S, -1) for a, b in parts for x in (a, b)], axis=1)
    A, S_ = flat(A_parts), flat(S_parts)
    # underflow: every product and sum may flush to zero below the dtype's smallest normal
    tiny = c * np.finfo(dt).tiny * N
    tol = c * u * A + S_ + tiny
    delta_tol = [d + tiny for d in delta_tol]
    z_err = [c * u * z + tiny for z in zfwd]
    h_err = [c * u * h + tiny for h in hfwd[1:]]
    return [Model(tol[s], A[s], [d[s * N:(s + 1) * N] for d in delta_tol], zfwd[-1][s * N:(s + 1) * N],
                  [z[s * N:(s + 1) * N] for z in z_err], [h[s * N:(s + 1) * N] for h in h_err], cost_tols[s])
            for s in range(S)]


def kink_reach(spec: NetworkSpec, params, X, jumps) -> np.ndarray:
    """Which gradient entries (flat, spec.flatten order) some unit on a kink reaches: the ones a
    correct implementation's choice of side there can move. `jumps[j]` is |δ_j at the other side
    - δ_j| (N, rows_j): the reference's all-left against all-right deltas, per sample. The two
    whole-network gradients can agree where a mixed choice (one unit left, another right) does
    not: jumps that cancel across samples (two perceptron terms with opposite labels and equal
    inputs) or across units. So the jumps are carried down on absolute values, per sample, as the
    error model carries its terms: through |W| and the larger one-sided slope of a unit within its
    forward error of a kink (a tied maxout piece may win); an entry is reached where that is > 0."""
    dt = np.dtype(spec.dtype)
    N = X.shape[0]
    cu = rounding_factor(spec, N) * unit_roundoff(dt)
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    hs, slopes = [np.asarray(X, np.float64)], []
    for layer, (W, b) in zip(spec.layers, params):
        z = hs[-1] @ W.T + b
        zone = cu * (np.abs(hs[-1]) @ np.abs(W).T + np.abs(b))
        if layer.activation == "maxout":
            h, d = _maxout(z, layer.pieces)
            zg, zoneg = z.reshape(N, -1, layer.pieces), zone.reshape(N, -1, layer.pieces)
            slopes.append((zg >= zg.max(axis=2, keepdims=True) - zoneg).reshape(z.shape).astype(float))
        else:
            h, d = _activation(layer.activation, layer.param, z)
            slopes.append(_slope_bound(layer, z, d, np.abs(z) <= zone))
        hs.append(h)
    parts, R = [], None
    for k in reversed(range(spec.depth)):
        layer = spec.layers[k]
        Rk = np.abs(jumps[k])
        if R is not None:
            incoming = R @ np.abs(params[k + 1][0])
            if layer.activation == "maxout":
                incoming = np.repeat(incoming, layer.pieces, axis=1)
            Rk = Rk + incoming * slopes[k]
        parts.insert(0, np.concatenate([(Rk.T @ np.abs(hs[k])).ravel(), Rk.sum(0)]))
        R = Rk
    return np.concatenate(parts) > 0


def gradient_tolerance(spec: NetworkSpec, params, X, Y, dtype=None):
    """(tol, A, delta_tol) of `model`: the per-entry absolute error bound, the absolute-value
    gradient, and per layer the error bound of the deltas dC/dz (N, rows)."""
    m = model(spec, params, X, Y, dtype)
    return m.tol, m.A, m.delta_tol


def output_sensitivity(zfwd_out, out_deltas, loss_cancellation: float) -> float:
    """Σ |dC/dz| Zfwd over the outputs, plus the loss's internal cancellation: the cost's
    rounding error is c u times this plus |C| (reference.fd.cost_rounding). The outputs' error
    scales with their propagated magnitudes Zfwd, not with |z|: a z near 0 made of large
    cancelling terms carries their error."""
    return float(np.sum(np.abs(out_deltas) * zfwd_out)) + loss_cancellation


def output_deltas(ref) -> np.ndarray:
    """|dC/dz| at the outputs for the cost's error: with units or loss terms on a kink, the
    larger of the two sides' (the value there moves with z at either side's slope, and a correct
    implementation may be on either: a sigmoid output of 6e-16 in a perceptron loss term on its
    kink moves the cost by its own rounding, where the side the reference took has slope 0)."""
    d = np.abs(ref.deltas[-1])
    other = getattr(ref, "deltas_other_side", None)
    return d if other is None else np.maximum(d, np.abs(other[-1]))


def reference_cost_error(spec: NetworkSpec, zfwd_out, ref) -> float:
    """e_C of the float64 reference cost (reference.fd.cost_rounding) at a jax_ref.ReferenceResult,
    with the outputs' propagated magnitudes of the same point (`Model.zfwd_out`)."""
    from reference.fd import cost_rounding
    return cost_rounding(ref.cost, output_sensitivity(zfwd_out, output_deltas(ref), ref.loss_cancellation), spec.depth)


def cost_tolerance(spec: NetworkSpec, cost_abs: float, output_sensitivity: float, n: int, dtype=None) -> float:
    """Absolute error bound of a correct implementation's cost: c u (|C| + Σ|y dC/dy|), plus the
    dtype's underflow level (a float32 cost of 1e-232 is 0)."""
    dt = np.dtype(dtype or spec.dtype)
    c = rounding_factor(spec, n)
    return c * unit_roundoff(dt) * (abs(cost_abs) + output_sensitivity) + c * np.finfo(dt).tiny
