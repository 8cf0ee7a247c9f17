"""The JAX autodiff reference: cost, gradients and per-layer deltas by `jax.grad`, in float64.

Compiling per architecture would cost 100-200 ms each time Hypothesis draws a new network, so
every network is padded into a *shape bucket* (depth, width, batch and maxout pieces rounded
up) and masked; activations and the loss are picked at run time with `lax.switch`. One
executable per bucket and entry point (reference.programs, kept on disk across runs) serves
every architecture that fits it.

Padding is exact, not approximate: padded weights and biases are zero, so padded units feed
nothing forward (their columns in the next W are zero); padded output units and samples are
masked out of the loss (and out of the kink patterns); layers past the network's depth pass h
through unchanged, so their parameters get exactly zero gradient.

Non-differentiable points: every kinked unit (relu family, elu with alpha != 1, maxout ties,
l1/perceptron/hinge losses) reports which side of its kink it is on. `gradients` says how many
units sit exactly on a kink and, if any, also returns the gradient with the other one-sided
convention, so a caller can tell a subgradient choice from a wrong gradient; the batched FD
evaluations say which perturbations moved a unit across a kink.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import NamedTuple

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from reference import activations as A, programs  # noqa: E402
from reference.spec import LOSSES, Layer, NetworkSpec, check_batch, check_params, flatten, unflatten  # noqa: E402

# Dense activations by branch; the generalized ReLU branch covers relu / leaky / abs.
_ACT_BRANCH = {"identity": 0, "relu": 1, "leaky_relu": 1, "abs": 1, "generalized_relu": 1,
               "sigmoid": 2, "tanh": 3, "softplus": 4, "elu": 5, "maxout": 0}
_LOSS_BRANCH = {name: i for i, name in enumerate(LOSSES)}
FD_CHUNK = 1024  # perturbed parameter sets per compiled call ...
FD_BLOCK = 64    # ... evaluated FD_BLOCK at a time (_perturbed_costs)
GRAD_SLOTS = 4   # networks of one architecture per gradient call (gradients_many) ...
TINY_GRAD_SLOTS = 16   # ... in a tiny bucket, where 16 cost little more than 4 (0.04 ms a network, was 0.1)
DIR_CHUNK = 16   # points along a direction per call (direction_costs) ...
DIR_SLOTS = 4    # ... for up to DIR_SLOTS networks of one architecture in a tiny bucket (dir_slots)


def _pos(u, zone, side):
    """The piece whose derivative a unit takes: side = 0, a unit inside the kink zone (|u| <= zone)
    takes the left one, side = 1 the right one."""
    return jnp.where(side == 0, u > zone, u >= -zone)


def _sided(u, zone, side, right, left):
    """The piecewise function's exact value (right piece for u > 0) with the derivative of the
    piece `side` chooses inside the kink zone: the zone decides which one-sided derivative is
    taken, never the value (a perceptron loss of 2e-15 is 2e-15, not 0, whatever the side)."""
    chosen = jnp.where(_pos(u, zone, side), right, left)
    return chosen + lax.stop_gradient(jnp.where(u > 0, right, left) - chosen)


def _act_branches():
    # A unit inside its kink zone takes the chosen piece's value as well as its slope: the value
    # moves by at most (1 + |a|) zone, rounding-sized against the unit's Zabs (the cost's error
    # model covers it), and the finite differences then see one smooth piece there instead of
    # a kink a rounding error away (measured: twice the not-checkable verdicts in float32).
    return [
        lambda z, a, zone, side: z,
        lambda z, a, zone, side: jnp.where(_pos(z, zone, side), z, a * z),
        lambda z, a, zone, side: A.sigmoid(z),
        lambda z, a, zone, side: A.tanh(z),
        lambda z, a, zone, side: A.softplus(z),
        lambda z, a, zone, side: jnp.where(_pos(z, zone, side), z, A.elu_negative(z, a)),
    ]


def _hinge_at(u, zone, side):
    """max(0, u) with the derivative inside the kink zone |u| <= zone taken from the chosen side,
    and its exact value: a loss term's value is the cost (compared against a bound relative to
    it), not a rounding-sized part of a larger one."""
    return _sided(u, zone, side, u, jnp.zeros_like(u))


def _elementwise(f, scale):
    """A loss summed over the (masked) output units, and the magnitude its rounding error is
    relative to: `scale(y, t, value)` per unit, e.g. |y| + |t| for |t - y| (which cancels)."""
    def loss(y, t, m, zone, side):
        v = f(y, t, zone, side)
        mag = lax.stop_gradient(jnp.sum(jnp.where(m, scale(y, t, v), 0.0), axis=-1))
        return jnp.sum(jnp.where(m, v, 0.0), axis=-1), mag
    return loss


def _softmax_ce(y, t, m, zone, side):
    z = jnp.where(m, y, -jnp.inf)
    zmax = lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    lse = zmax[..., 0] + jnp.log(jnp.sum(jnp.exp(z - zmax), axis=-1))
    ty = jnp.sum(jnp.where(m, t * y, 0.0), axis=-1)
    # lse - t.y cancels when the right class wins by a margin: the error is relative to both
    magnitude = lax.stop_gradient(jnp.abs(lse) * jnp.sum(t, axis=-1) + jnp.sum(jnp.where(m, jnp.abs(t * y), 0.0), axis=-1))
    return lse * jnp.sum(t, axis=-1) - ty, magnitude


_LOSS_FNS = {
    "mse": _elementwise(lambda y, t, z, s: 0.5 * (t - y) ** 2, lambda y, t, v: v + jnp.abs(t - y) * (jnp.abs(t) + jnp.abs(y))),
    "l1": _elementwise(lambda y, t, z, s: _hinge_at(y - t, z, s) + _hinge_at(t - y, z, 1 - s),
                       lambda y, t, v: jnp.abs(t) + jnp.abs(y)),
    "logistic": _elementwise(lambda y, t, z, s: A.softplus(-t * y), lambda y, t, v: v + jnp.abs(t * y)),
    "perceptron": _elementwise(lambda y, t, z, s: _hinge_at(-t * y, z, s), lambda y, t, v: jnp.abs(t * y)),
    "hinge": _elementwise(lambda y, t, z, s: _hinge_at(1 - t * y, z, s), lambda y, t, v: 1 + jnp.abs(t * y)),
    "bce": _elementwise(lambda y, t, z, s: A.softplus((1 - 2 * t) * y), lambda y, t, v: v + jnp.abs(y)),
    "softmax_ce": _softmax_ce,
}
assert list(_LOSS_FNS) == list(LOSSES)
# The argument whose sign is the loss's kink pattern (None: smooth).
_LOSS_KINK_ARG = [None, lambda y, t: y - t, None, lambda y, t: -t * y, lambda y, t: 1 - t * y, None, None]
_KINK_ACT_BRANCH = (1, 5)  # relu-like and elu branches carry a kink at 0


def _select_piece(z, piece_mask, zone, side):
    """Maxout: the winning piece's value, the gradient going to the first (side 0) or last
    (side 1) of the pieces tied within the kink zone; also returns the winner index (the unit's
    activation pattern) and whether there is a tie."""
    zm = jnp.where(piece_mask[None, :, None], z, -jnp.inf)
    is_max = zm >= jnp.max(zm, axis=1, keepdims=True) - zone
    order = jnp.where(side == 0, jnp.cumsum(is_max, axis=1), jnp.cumsum(is_max[:, ::-1], axis=1)[:, ::-1])
    chosen = is_max & (order == 1)
    return jnp.sum(jnp.where(chosen, z, 0.0), axis=1), jnp.argmax(chosen, axis=1), jnp.sum(is_max, axis=1) > 1


def _forward(Wp, bp, eps, X, Y, meta, side, entry=None, zones=None, replicas=None):
    """The padded network's cost and its activation pattern (which side of every kink each
    unit, maxout group and loss term is on), how many units sit on a kink, and the output
    layer's pre-activations. Layers run under `lax.scan`, so one compiled body serves every
    depth in the bucket (a layer past the network's depth passes h through unchanged).

    `entry` (from `_entry_change`, one per row of X) changes one parameter by delta without
    building a changed copy of the weights: in each row, its layer adds delta * h[row, col] (a
    weight) or delta (a bias) to one pre-activation. Under vmap over many such changes (the
    finite differences) the weights stay shared, so each layer is one matrix product for all of
    them, not one small product per change. delta = value - old is the representable step the
    finite differences divide by (reference.fd: (θ + h) - θ), so the two agree exactly. A row's
    change is its own: `replicas` (`_Replicas`, with `entry`) says which copy of the batch each
    row belongs to, and the cost is then one per copy, each with its own change's regularizer
    (_perturbed_costs: several changes share one pass over the padded rows). `zones` (the
    unchanged network's, from its own call, in the rows' order) replaces computing the kink
    zones |W| |h| + |b| again, a second product per layer: they are rounding-sized, and a change
    of delta moves them by a relative ~delta. Together: 2x faster for a 16-wide, 32-sample
    bucket, 1.3x for the smallest.
    Returns the cost (one per copy with `replicas`) and (patterns, on_kink, (z_out, cost_abs),
    per-layer kink zones)."""
    acts, alphas, is_maxout, piece_mask, unit_mask, active, out_mask, smask, loss_code, l2, n, zone_c, floor = meta
    if replicas is not None:
        smask = replicas.valid   # the rows some copy of the batch fills
    branches = _act_branches()
    live = smask[:, None]
    D, K, H = bp.shape

    def body(pieces, carry, xs):
        # `pieces` of the bucket's K: all of them for a maxout layer, the first for any other
        h, z_out, zabs_out = carry
        W, b, e, act, alpha, maxout, pmask, umask, depth, *given = xs
        W, b, e, pmask = W[:pieces], b[:pieces], e[:, :pieces], pmask[:pieces]
        z = jnp.einsum("nw,kvw->nkv", h, W) + b[None] + e
        if entry is not None:   # each row its own change
            h_col = jnp.take_along_axis(h, entry.col[:, None], axis=1)[:, 0]
            step = jnp.where(depth == entry.layer, entry.delta, 0.0) * jnp.where(entry.is_bias, 1.0, h_col)
            at = ((jnp.arange(pieces)[None, :, None] == entry.piece[:, None, None])
                  & (jnp.arange(H)[None, None, :] == entry.unit[:, None, None]))
            z = z + jnp.where(at, step[:, None, None], 0.0)
        zd = z[:, 0, :]
        # the kink zone: within the forward rounding error of z, a unit may be on either side
        zabs = given[0][:, :pieces] if given else lax.stop_gradient(
            jnp.einsum("nw,kvw->nkv", jnp.abs(h), jnp.abs(W)) + jnp.abs(b)[None] + underflow_magnitude(W, floor)[None])
        zone = zone_c * zabs
        dense = lax.switch(act, branches, zd, alpha, zone[:, 0, :], side)
        pieces_h, winner, tie = _select_piece(z, pmask, zone, side)
        # elu is C1 at 0 for alpha = 1 but its f'' still jumps: a stencil across 0 breaks the
        # smoothness the FD error estimates assume, so elu's 0 is a kink for them too
        kinked = (act == _KINK_ACT_BRANCH[0]) | (act == _KINK_ACT_BRANCH[1])
        mask = live & umask[None, :]
        pat = jnp.where(maxout, winner, jnp.where(kinked, (zd > 0).astype(winner.dtype), 0))
        at = jnp.where(maxout, tie, kinked & (jnp.abs(zd) <= zone[:, 0, :]))
        h_new = jnp.where(maxout, pieces_h, dense)
        zmax = jnp.where(maxout, jnp.max(jnp.where(pmask[None, :, None], z, -jnp.inf), axis=1), zd)
        # zones of the pieces not computed: zeros, never read for a layer that is not maxout
        zabs_all = jnp.pad(zabs, ((0, 0), (0, K - pieces), (0, 0)))
        return (h_new, zmax, jnp.max(zabs, axis=1)), (jnp.where(mask, pat, 0), jnp.sum(mask & at), zabs_all)

    def run_layer(carry, xs):
        # in a maxout bucket, a layer that is not maxout computes its one piece, not K (lax.cond
        # on the run-time flag: the FD evaluations of a maxout network were 2.5-3x a dense one's)
        if K == 1:
            return body(1, carry, xs)
        is_maxout_layer = xs[5]   # the layer's `maxout` flag (body's unpacking of xs)
        return lax.cond(is_maxout_layer, partial(body, K), partial(body, 1), carry, xs)

    def layer(carry, xs):
        # a layer past the network's depth is skipped at run time (lax.cond, not a masked
        # select): it passes h through and reports no kinks, so a deep bucket costs a shallow
        # network nothing but the loop's step, and one program serves every depth up to it
        on, xs = xs[0], xs[1:]
        shapes = jax.eval_shape(run_layer, carry, xs)[1]

        def skipped(carry, xs):
            return carry, tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)
        return lax.cond(on, run_layer, skipped, carry, xs)

    zeros = jnp.zeros_like(X)
    xs = (active, Wp, bp, eps, acts, alphas, is_maxout, piece_mask, unit_mask, jnp.arange(D))
    (h, z_out, zabs_out), (patterns, on_kink, zabs_layers) = lax.scan(
        layer, (X, zeros, zeros), xs if zones is None else xs + (zones,))
    loss_zone = zone_c * (zabs_out + jnp.abs(Y) + 1.0)
    per_sample, magnitude = lax.switch(loss_code, list(_LOSS_FNS.values()), h, Y, out_mask[None, :], loss_zone, side)
    kink_arg = lax.switch(loss_code, [(lambda y, t: jnp.ones_like(y)) if f is None else f
                                      for f in _LOSS_KINK_ARG], h, Y)
    lmask = live & out_mask[None, :]
    loss_pattern = jnp.where(lmask, (kink_arg > 0).astype(patterns.dtype), 0)
    on_kink = jnp.sum(on_kink) + jnp.sum(lmask & (jnp.abs(kink_arg) <= loss_zone))
    sq = jnp.sum(Wp * Wp)
    per_sample = jnp.where(smask, per_sample, 0.0)
    if replicas is None:
        reg = 0.5 * l2 * sq
        cost = jnp.sum(per_sample) / n + reg
    else:   # a cost per copy of the batch: its rows' losses, laid out alike for every copy, and its
        # change's regularizer, the changed weight's square: (w + delta)² - w² = delta (2w + delta)
        e = jax.tree_util.tree_map(lambda a: a[replicas.first], entry)
        reg = 0.5 * l2 * (sq + jnp.where(e.is_bias, 0.0, e.delta * (2 * e.old + e.delta)))
        cost = _per_copy(replicas, lambda: jnp.sum(per_sample),
                         lambda: jnp.sum(jnp.where(replicas.take, per_sample[replicas.gather], 0.0), axis=1)) / n + reg
    cost_abs = lax.stop_gradient(jnp.sum(jnp.where(smask, magnitude, 0.0)) / n + 0.5 * l2 * sq)
    return cost, ((patterns, loss_pattern), on_kink, (z_out, cost_abs), zabs_layers)


def _crossed(pattern, base):
    return jnp.any(pattern[0] != base[0]) | jnp.any(pattern[1] != base[1])


def _cost_aux(Wp, bp, eps, X, Y, meta, side):
    cost, (_, on_kink, z_out, _) = _forward(Wp, bp, eps, X, Y, meta, side)
    return cost, (on_kink, z_out)


def _value_and_grad(Wp, bp, eps, X, Y, meta, side):
    """(cost, on_kink, cost_abs) as one vector, the padded flat gradient, the deltas (the
    gradient with respect to eps) and the output pre-activations: few outputs, since each
    costs a transfer."""
    (cost, (on_kink, (z_out, cost_abs))), (gW, gb, geps) = jax.value_and_grad(
        _cost_aux, argnums=(0, 1, 2), has_aux=True)(Wp, bp, eps, X, Y, meta, side)
    return jnp.stack([cost, on_kink.astype(cost.dtype), cost_abs]), jnp.concatenate([gW.ravel(), gb.ravel()]), geps, z_out


def _value_and_grad_many(Wp, bp, eps, X, Y, meta, side):
    """_value_and_grad for grad_slots(bucket) parameter sets and batches of one architecture (leading
    axis) in one call: the vectorized kernels serve them all for little more than the fixed
    cost of one (benchmarks/bench_startup.py). One program serves a single network too (slot
    0, the other slots zeros): a second program for it would cost a compile for ~0.5 ms a call."""
    return jax.vmap(_value_and_grad, in_axes=(0, 0, None, 0, 0, None, None))(Wp, bp, eps, X, Y, meta, side)


def _perturbed_costs(Wp, bp, eps, X, Y, meta, idx, values, blocks):
    """Costs with one flat padded-parameter entry set to a new value, for each (idx, value),
    and whether that perturbation moved any unit across a kink (a changed activation pattern).

    A batch of n samples in a bucket of Nb rows leaves rows idle, so one evaluation carries
    R = Nb // n copies of the batch, each with its own change (`_Replicas`): a 14-sample batch
    in a 32-row bucket costs half the passes (1024 changes of a 12-16-16-3 net: 7.2-8.4 ms
    against 13.8-18.5 ms), 6 samples a fifth (492 changes of an 8-10-3 net: 1.8-2.4 against
    6.0-7.5 ms); the main job's perturbed calls took 3.5 s instead of 5.2 s (serial, timed
    around jax_ref.perturbed_costs). A change's rows and its cost's sum are laid out the same
    in whichever copy it lands, so its cost does not depend on its company.

    Only the first `blocks` blocks of FD_BLOCK evaluations (FD_BLOCK * R changes) are evaluated
    (a loop with a run-time count): one program serves every number of perturbations up to
    FD_CHUNK, at the cost of what it evaluates (FD_BLOCK at a time amortizes the per-block
    overhead as well as one call of 256 did)."""
    _, ((base, loss_base), _, _, zones) = _forward(Wp, bp, eps, X, Y, meta, 0)
    rows = _replicas(meta[7])
    Nb = X.shape[0]
    Xr, Yr, zones = X[rows.sample], Y[rows.sample], zones[:, rows.sample]
    base, loss_base = base[:, rows.sample], loss_base[rows.sample]
    span = FD_BLOCK * Nb                    # the most changes a block can carry (R = Nb)
    idx, values = (jnp.concatenate([a, jnp.broadcast_to(a[-1], (span,))]) for a in (idx, values))
    # change (within its block) of each row of each evaluation, and where each of the block's
    # changes comes out: evaluation p // R, copy p % R
    change = jnp.arange(FD_BLOCK)[:, None] * rows.R + rows.owner[None, :]
    p = jnp.arange(span)
    by_eval, by_copy = jnp.minimum(p // rows.R, FD_BLOCK - 1), p % rows.R
    copies = rows.owner[None, :] == jnp.arange(Nb)[:, None]    # (copy, row)

    def one(i, v):
        entry = jax.vmap(_entry_change, in_axes=(None, None, 0, 0))(Wp, bp, i, v)
        cost, ((pat, loss_pat), *_) = _forward(Wp, bp, eps, Xr, Yr, meta, 0, entry, zones, rows)
        moved = (jnp.any(pat != base, axis=(0, 2)) | jnp.any(loss_pat != loss_base, axis=1)) & rows.valid
        return cost, _per_copy(rows, lambda: jnp.any(moved), lambda: jnp.any(copies & moved[None, :], axis=1))

    def block(k, out):
        at = k * FD_BLOCK * rows.R
        c, crossed = jax.vmap(one)(lax.dynamic_slice_in_dim(idx, at, span)[change],
                                   lax.dynamic_slice_in_dim(values, at, span)[change])
        # past FD_BLOCK * R, filler: the next block writes over it, or it lies past the last change
        return (lax.dynamic_update_slice_in_dim(out[0], c[by_eval, by_copy], at, 0),
                lax.dynamic_update_slice_in_dim(out[1], crossed[by_eval, by_copy], at, 0))
    n = values.shape[0]
    c, crossed = lax.fori_loop(0, blocks, block, (jnp.zeros(n, values.dtype), jnp.zeros(n, bool)))
    return c[:n - span], crossed[:n - span]


class _Replicas(NamedTuple):
    """Rows of a bucket's batch filled with R = Nb // n copies of an n-sample batch: row i is
    sample i % n of copy i // n (`sample`, `owner`), the rows of a copy < R are `valid`; the
    cost of copy r sums per-sample losses gather[r, :n] (`take`), its change is row first[r]'s."""
    R: jax.Array
    sample: jax.Array
    owner: jax.Array
    valid: jax.Array
    gather: jax.Array
    take: jax.Array
    first: jax.Array


def _replicas(smask) -> _Replicas:
    Nb = smask.shape[0]
    n = jnp.maximum(jnp.sum(smask).astype(jnp.int32), 1)
    R = Nb // n
    i = jnp.arange(Nb)
    owner, j = i // n, i % n
    valid = owner < R
    first = jnp.minimum(i * n, Nb - 1)
    return _Replicas(R, jnp.where(valid, j, 0), owner, valid, jnp.minimum(first[:, None] + i[None, :], Nb - 1),
                     (i[None, :] < n) & (i[:, None] < R), first)


def _per_copy(rows: _Replicas, whole, each):
    """A value per copy of the batch (shape (Nb,)): `each()` for R > 1 copies; for one copy (the
    rows' only owner), `whole()` in slot 0, the (Nb, Nb) gather and mask skipped at run time
    (lax.cond): a 32-sample batch would pay them for nothing on every evaluation."""
    def one_copy():
        v = whole()
        return jnp.zeros(rows.owner.shape, v.dtype).at[0].set(v)
    return lax.cond(rows.R == 1, one_copy, each)


def replicas_of(bucket: "Bucket", n: int) -> int:
    """Copies of an n-sample batch one evaluation of _perturbed_costs carries (as _replicas)."""
    return bucket.batch // max(n, 1)


class _Entry(NamedTuple):
    layer: jax.Array
    piece: jax.Array
    unit: jax.Array
    col: jax.Array
    is_bias: jax.Array
    delta: jax.Array
    old: jax.Array


def _entry_change(Wp, bp, i, value):
    """Flat padded index i (into concat(Wp.ravel(), bp.ravel())) set to `value`, as _forward's
    `entry`: (layer, piece, unit, input column, is a bias, delta), plus the old value."""
    is_bias = i >= Wp.size
    d, k, v, col = jnp.unravel_index(jnp.where(is_bias, 0, i), Wp.shape)
    db, kb, vb = jnp.unravel_index(jnp.where(is_bias, i - Wp.size, 0), bp.shape)
    old = jnp.concatenate([Wp.ravel(), bp.ravel()])[i]  # unbatched under vmap: built once
    return _Entry(jnp.where(is_bias, db, d), jnp.where(is_bias, kb, k), jnp.where(is_bias, vb, v), col, is_bias,
                  value - old, old)


def _direction_costs(Wp, bp, eps, X, Y, meta, VW, Vb, ts):
    _, (base, *_) = _forward(Wp, bp, eps, X, Y, meta, 0)

    def one(t):
        cost, (pat, *_) = _forward(Wp + t * VW, bp + t * Vb, eps, X, Y, meta, 0)
        return cost, _crossed(pat, base)
    return jax.vmap(one)(ts)


def _direction_costs_many(Wp, bp, eps, X, Y, meta, VW, Vb, ts):
    """_direction_costs for dir_slots(bucket) networks of one architecture (leading axis), each
    with its own parameters, batch, direction and points: the draws of one property example
    share a call. One program serves a single network too (slot 0, the other slots zeros), as
    the gradient's does, so the slots add no program. Measured through reference.programs
    on a 4-4-4-3 tanh net, N = 8, 16 points (this VM varied ~1.5x): 4 slots with one network
    ~1.4 ms CPU, with 4 networks 1.4-1.7 ms (one network alone in the unvmapped program was
    0.8-0.9 ms); 8 slots 1.5-1.75 ms with one, 1.9-2.0 ms with 8. 4, the suite's draws."""
    return jax.vmap(_direction_costs, in_axes=(0, 0, None, 0, 0, None, 0, 0, 0))(Wp, bp, eps, X, Y, meta, VW, Vb, ts)


def _run(call):
    """A (key, fn, args) call (from _gradient_call, _perturbed_call, _direction_call) by its
    compiled program (reference.programs); key = (name, bucket, sizes...) determines the
    arguments' shapes. The same three builders give prepare() its programs' arguments, so the
    programs it compiles ahead are exactly the ones the calls find."""
    key, fn, args = call
    return programs.compiled(key, fn, args, fast=_fast_first(key[1]))(*args)


def _fast_first(bucket: Bucket) -> bool:
    """Whether a bucket's programs are built fast first when a check waits for them (see
    reference.programs.FAST_OPTIONS): the suite's buckets (widths <= 16, N <= 32), whose calls
    take milliseconds even at -O0, so the compile is the wait; a larger one's calls are long
    enough that -O0's 3-5x slower runs would cost more than its faster compile saves."""
    return bucket.width <= 16 and bucket.batch <= 32


def _gradient_call(packs: list, side: int):
    """Up to grad_slots(bucket) packed networks of one architecture and batch size, one per slot."""
    p = packs[0]
    assert all(q.meta is p.meta for q in packs), "one architecture and batch size per call"
    Wp, bp, X, Y = (_by_slot([getattr(q, name) for q in packs], grad_slots(p.bucket)) for name in ("Wp", "bp", "X", "Y"))
    return ("gradient", p.bucket), _value_and_grad_many, (Wp, bp, p.eps, X, Y, p.meta, np.int32(side))


def _by_slot(values: list, slots: int) -> np.ndarray:
    """values (one array shape) stacked along a leading axis of `slots`, the slots left over
    zeros: a program's slots are fixed, its callers' networks are not."""
    out = np.zeros((slots,) + np.shape(values[0]))
    out[:len(values)] = values
    return out


def _perturbed_call(p: "Packed", idx, values, blocks: int):
    return ("perturbed", p.bucket), _perturbed_costs, p.args() + (idx, values, np.int32(blocks))


def _direction_call(jobs: list):
    """Up to dir_slots(bucket) (packed, VW, Vb, ts) of one architecture and batch size, one per
    slot (DIR_CHUNK points each); the slots left over are zeros, and are not read."""
    p, slots = jobs[0][0], dir_slots(jobs[0][0].bucket)
    assert all(q.meta is p.meta for q, *_ in jobs), "one architecture and batch size per call"
    Wp, bp, X, Y = (_by_slot([getattr(q, name) for q, *_ in jobs], slots) for name in ("Wp", "bp", "X", "Y"))
    VW, Vb, ts = (_by_slot([job[k] for job in jobs], slots) for k in (1, 2, 3))
    return ("directional", p.bucket), _direction_costs_many, (Wp, bp, p.eps, X, Y, p.meta, VW, Vb, ts)


def underflow_floor(spec: NetworkSpec) -> float:
    """tiny / u of the implementation's dtype: added to a unit's |W| |h| + |b| (scaled by
    1 + Σ|W| of its row, `underflow_magnitude`), the kink zone c u (...) also covers inputs
    that underflow in that dtype. A float32 sigmoid of -118 is 0, not 5e-52: the next relu unit's
    z is exactly 0 there, the float64 reference's 8e-52, and its side is the dtype's to choose."""
    from reference.rounding import unit_roundoff
    dt = np.dtype(spec.dtype)
    return float(np.finfo(dt).tiny / unit_roundoff(dt))


def underflow_magnitude(W, floor):
    """floor (1 + Σ_j |W_ij|) per unit (W's last axis is its inputs): each input may be off by
    the dtype's smallest normal number."""
    return floor * (1.0 + jnp.sum(jnp.abs(W), axis=-1))


def kink_zone_factor(spec: NetworkSpec, n: int) -> float:
    """c * u of the implementation's dtype: a unit with |z| <= c u (|W| |h| + |b| + the underflow
    level, `underflow_floor`) is within the forward rounding error of its kink, and a correct
    implementation may put it on either side."""
    from reference.rounding import rounding_factor, unit_roundoff
    return rounding_factor(spec, n) * unit_roundoff(spec.dtype)


def _up(n: int, lo: int, factor: int = 2) -> int:
    """Round up to lo * factor^k."""
    b = lo
    while b < n:
        b *= factor
    return b


@dataclass(frozen=True)
class Bucket:
    depth: int
    width: int
    batch: int
    pieces: int


def bucket_of(spec: NetworkSpec, n: int) -> Bucket:
    width = max([spec.n_in] + [l.width for l in spec.layers])
    return _bucket(spec.depth, width, n, max(l.pieces for l in spec.layers))


TINY = (4, 8)   # widths <= 4 with N <= 8: the tiny bucket (_bucket)


def _bucket(depth: int, width: int, n: int, pieces: int) -> Bucket:
    # coarse ladders (depth 8, 16, ..., width 16, 64, 256, batch 32, 128, 512): every network the
    # property suite draws (depth <= 5, widths <= 16, N <= 32) fits one of two buckets, with and
    # without maxout (and the tiny ones below), so its whole run needs a handful of programs.
    # Padding costs little: layers past the network's depth are skipped at run time (_forward),
    # and below 16 units and 32 samples a program's time is mostly its fixed cost...
    # ... except for the finite differences, whose evaluations are many: a network of widths <= 4
    # on N <= 8 (every one Hypothesis starts and shrinks towards) in a 16-wide, 32-sample bucket
    # computes 64x the products it needs, and its 4P perturbed costs took 3.7 ms against 0.6 ms in
    # a 4-wide, 8-sample one (gradients 0.62 against 0.39 ms a call, directions 0.71 against 0.33).
    # So such networks get the tiny bucket: one more rung, a bucket (and three programs) more.
    tiny = width <= TINY[0] and n <= TINY[1]
    return Bucket(depth=_up(depth, 8), width=TINY[0] if tiny else _up(width, 16, 4),
                  batch=TINY[1] if tiny else _up(n, 32, 4), pieces=1 if pieces == 1 else _up(pieces, 4))


def grad_slots(bucket: Bucket) -> int:
    """Networks per gradient call in this bucket (gradients_many)."""
    return TINY_GRAD_SLOTS if (bucket.width, bucket.batch) == TINY else GRAD_SLOTS


def dir_slots(bucket: Bucket) -> int:
    """Networks per directional call in this bucket (direction_costs_many): DIR_SLOTS in the tiny
    one, where a call's fixed cost is most of it; one in a larger one, whose points cost more."""
    return DIR_SLOTS if (bucket.width, bucket.batch) == TINY else 1


def buckets_covering(max_depth: int, max_width: int, max_batch: int, max_pieces: int = 1) -> list[Bucket]:
    """Every bucket a network up to these sizes can fall in (maxout with 2..max_pieces pieces)."""
    out = {_bucket(d, w, n, k) for d in range(1, max_depth + 1) for w in range(1, max_width + 1)
           for n in range(1, max_batch + 1) for k in {1} | set(range(2, max_pieces + 1))}
    return sorted(out, key=lambda b: (b.pieces, b.depth, b.width, b.batch))


def prepare(buckets, background: bool = True, threads: int = 1, rotate: int = 0) -> int:
    """Compile (or load) ahead every program the checks use on these buckets: a bucket's
    gradient, perturbations and directions, one bucket after the other (a network's checks need
    all three; `rotate` starts that many in), on `threads` background threads. A check that
    needs one meanwhile takes it over or waits for it, never compiles it twice. Returns the
    number of programs."""
    calls = [c for b in buckets for c in _calls(_probe(b)).values()]
    k = rotate % len(calls) if calls else 0
    programs.prepare(calls[k:] + calls[:k], background=background, threads=threads)
    return len(calls)


def prepare_ahead(bucket: Bucket, names) -> int:
    """Start getting these programs of one bucket ("gradient", "perturbed", "directional"), in
    this order, built fast (reference.programs.FAST_OPTIONS) on a background thread while this
    thread gets another one it needs first: one network's checks need all three, and their
    tracing (Python, ~1.7 s of the three) then overlaps the other's compile (XLA, the GIL
    released). Measured on the 499-parameter network of benchmarks/bench_startup.py, the first
    run_checks: fast builds one after the other 2.9 s, side by side 2.35-2.5 s. Returns how many
    it queued; a program held or on its way is not queued again, so warm calls cost ~nothing."""
    missing = [n for n in names if not programs.holds((n, bucket))]
    if missing:
        calls = _calls(_probe(bucket))
        programs.prepare([calls[n] for n in missing], threads=1, fast=_fast_first(bucket))
    return len(missing)


def _calls(p: "Packed") -> dict:
    """The three entry points' calls on a probe network, by program name (what prepare compiles)."""
    return {"gradient": _gradient_call([p], 0),
            "perturbed": _perturbed_call(p, np.zeros(FD_CHUNK, p.index.dtype), np.zeros(FD_CHUNK), 1),
            "directional": _direction_call([(p, p.Wp, p.bp, np.zeros(DIR_CHUNK))])}


def _probe(bucket: Bucket) -> "Packed":
    """A network of zeros laid out in `bucket` (a maxout output layer for a pieces > 1 bucket)."""
    h = bucket.width
    out = Layer(h, "maxout", pieces=bucket.pieces) if bucket.pieces > 1 else Layer(h, "identity")
    spec = NetworkSpec(h, (Layer(h, "identity"),) * (bucket.depth - 1) + (out,), "mse")
    p = pack(spec, [(np.zeros(w), np.zeros(b)) for w, b in spec.shapes()], np.zeros((bucket.batch, h)),
             np.zeros((bucket.batch, h)))
    assert p.bucket == bucket, (p.bucket, bucket)
    return p


_seen_buckets: set = set()
_lock = threading.Lock()


def compiled_buckets() -> int:
    """How many distinct shape buckets this process has used (each costs one compile per entry point)."""
    return len(_seen_buckets)


@lru_cache(maxsize=4096)
def _layout(spec: NetworkSpec, n: int):
    """What packing depends on only through (spec, n), computed once per architecture: the
    bucket, each user parameter's flat index in concat(Wp.ravel(), bp.ravel()), the masks."""
    bk = bucket_of(spec, n)
    D, K, H, Nb = bk.depth, bk.pieces, bk.width, bk.batch
    w_shape, b_shape = (D, K, H, H), (D, K, H)
    index, n_prev = [], spec.n_in
    piece_mask, unit_mask = np.zeros((D, K), bool), np.zeros((D, H), bool)
    for j, layer in enumerate(spec.layers):
        k, m = layer.pieces, layer.width
        rows = np.arange(m * k)
        unit, piece = rows // k, rows % k          # row i*k+p of W is unit i, piece p
        wi = np.ravel_multi_index((np.full((m * k, n_prev), j), piece[:, None], unit[:, None],
                                   np.arange(n_prev)[None, :]), w_shape)
        bi = D * K * H * H + np.ravel_multi_index((np.full(m * k, j), piece, unit), b_shape)
        index += [wi.ravel(), bi]
        piece_mask[j, :k], unit_mask[j, :m] = True, True
        n_prev = m

    def pad(values, dtype):  # per-layer values, padded to the bucket's depth
        return np.concatenate([np.asarray(values, dtype), np.zeros(D - spec.depth, dtype)])
    meta = (
        pad([_ACT_BRANCH[l.activation] for l in spec.layers], np.int32),
        pad([l.param for l in spec.layers], np.float64),
        pad([l.activation == "maxout" for l in spec.layers], bool),
        piece_mask,
        unit_mask,
        np.arange(D) < spec.depth,
        np.arange(H) < spec.n_out,
        np.arange(Nb) < n,
        np.int32(_LOSS_BRANCH[spec.loss]),
        np.float64(spec.l2),
        np.float64(n),
        np.float64(kink_zone_factor(spec, n)),
        np.float64(underflow_floor(spec)),
    )
    layers = [(j, l.pieces, l.width) for j, l in enumerate(spec.layers)]
    index = np.concatenate(index)
    index.flags.writeable = False  # shared by every Packed of this architecture
    # meta and eps are the same for every Packed of this architecture: on the device once
    # (each argument transferred costs a few microseconds per call)
    return bk, index, jax.device_put(meta), layers, jax.device_put(np.zeros((D, Nb, K, H)))


class Packed:
    """A network, its parameters and a batch laid out in a bucket's padded arrays."""

    def __init__(self, spec: NetworkSpec, params, X, Y):
        check_batch(spec, X, Y)
        params = check_params(spec, params)
        self.spec, self.n = spec, X.shape[0]
        bk, self.index, self.meta, self._layers, self.eps = _layout(spec, self.n)
        self.bucket = bk
        with _lock:
            _seen_buckets.add(bk)
        D, K, H, Nb = bk.depth, bk.pieces, bk.width, bk.batch
        self.theta = flatten(params)                   # user flat order
        padded = np.zeros(D * K * H * H + D * K * H)
        padded[self.index] = self.theta
        self.Wp, self.bp = padded[:D * K * H * H].reshape(D, K, H, H), padded[D * K * H * H:].reshape(D, K, H)
        self.X, self.Y = np.zeros((Nb, H)), np.zeros((Nb, H))
        self.X[:self.n, :spec.n_in], self.Y[:self.n, :spec.n_out] = X, Y

    def args(self):
        return self.Wp, self.bp, self.eps, self.X, self.Y, self.meta

    def unpack_deltas(self, geps: np.ndarray) -> list:
        out = []
        for j, k, m in self._layers:
            # (Nb, K, H) -> (n, m*k) with column i*k+p = piece p of unit i
            out.append(geps[j, :self.n, :k, :m].transpose(0, 2, 1).reshape(self.n, m * k))
        return out


def pack(spec: NetworkSpec, params, X, Y) -> Packed:
    """Lay out (params, X, Y) in float64 in the spec's bucket."""
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    return Packed(spec, params, np.asarray(X, np.float64), np.asarray(Y, np.float64))


@dataclass
class ReferenceResult:
    cost: float
    grads: list       # [(gW, gb)] in the shared conventions, float64
    deltas: list      # [dC/dz^j (N, rows_j)], the batch mean included
    flat: np.ndarray  # grads flattened in spec.flatten order
    on_kink: int = 0  # units / loss terms sitting exactly on a kink
    output_sensitivity: float = 0.0  # Σ|z dC/dz| over outputs (+ the loss's internal cancellation):
    # with |cost|, the scale of the cost's rounding error (properties.errormodel.output_sensitivity
    # refines it with the outputs' propagated magnitudes)
    loss_cancellation: float = 0.0   # the loss's internal cancellation alone: Σ magnitudes - |cost|
    flat_other_side: np.ndarray | None = None   # the gradient with the other one-sided convention
    deltas_other_side: list | None = None


def _grads_at(packs: list, side: int) -> list:
    """(cost, on_kink, output sensitivity, loss cancellation, flat gradient, deltas) for each of
    `packs` (one architecture and batch size), grad_slots(bucket) per call."""
    out = []
    slots = grad_slots(packs[0].bucket) if packs else 1
    for s in range(0, len(packs), slots):
        chunk = packs[s:s + slots]
        # np.asarray per output: jax.device_get is slower on small results
        outputs = [np.asarray(o) for o in _run(_gradient_call(chunk, side))]
        out += [_unpack_gradient(p, *(o[k] for o in outputs)) for k, p in enumerate(chunk)]
    return out


def _unpack_gradient(p: Packed, scalars, grad, geps, z_out):
    cost, on_kink, cost_abs = scalars
    flat = grad[p.index]
    deltas = p.unpack_deltas(geps)
    # sum |z dC/dz| over the output pre-activations: how much the cost moves under a relative
    # perturbation of the outputs, the scale of its rounding error (reference.fd.cost_rounding)
    out = p.spec.layers[-1]
    z = z_out[:p.n, :out.width]
    d = deltas[-1] if out.pieces == 1 else deltas[-1].reshape(p.n, out.width, out.pieces).sum(2)
    cancel = float(cost_abs - abs(cost))
    return float(cost), int(on_kink), float(np.sum(np.abs(z * d))) + cancel, cancel, flat, deltas


def gradients(spec: NetworkSpec, params, X, Y) -> ReferenceResult:
    """Cost, gradients and deltas of `spec`'s cost at (params, X, Y), in float64."""
    return gradients_packed(pack(spec, params, X, Y))


def gradients_packed(p: Packed) -> ReferenceResult:
    return gradients_many([p])[0]


def gradients_many(packs: list) -> list[ReferenceResult]:
    """gradients_packed of each of `packs`, which share one spec and batch size (e.g. several
    parameter sets and batches drawn for one architecture), grad_slots(bucket) networks per call."""
    results = []
    for p, (cost, on_kink, sens, cancel, flat, deltas) in zip(packs, _grads_at(packs, 0)):
        results.append(ReferenceResult(cost, unflatten(p.spec, flat), deltas, flat, on_kink, output_sensitivity=sens,
                                       loss_cancellation=cancel))
    kinked = [k for k, r in enumerate(results) if r.on_kink]
    for k, (*_, flat, deltas) in zip(kinked, _grads_at([packs[k] for k in kinked], 1)):
        results[k].flat_other_side, results[k].deltas_other_side = flat, deltas
    return results


def perturbed_costs(packed: Packed, idx, values) -> tuple[np.ndarray, np.ndarray]:
    """Costs with user-flat parameter idx[i] set to values[i], all evaluated in a batch, and
    for each whether the perturbation moved a unit across a kink."""
    idx = np.asarray(idx)
    values = np.asarray(values, np.float64)
    pidx = packed.index[idx]
    out, crossed = np.empty(len(idx)), np.empty(len(idx), bool)
    per_block = FD_BLOCK * replicas_of(packed.bucket, packed.n)
    for s in range(0, len(idx), FD_CHUNK):
        i, v = pidx[s:s + FD_CHUNK], values[s:s + FD_CHUNK]
        n = len(i)
        if n < FD_CHUNK:  # padded with no-op perturbations to the program's shape; not evaluated
            i = np.concatenate([i, np.full(FD_CHUNK - n, pidx[0])])
            v = np.concatenate([v, np.full(FD_CHUNK - n, packed.theta[idx[0]])])
        c, k = _run(_perturbed_call(packed, i, v, -(-n // per_block)))
        out[s:s + n], crossed[s:s + n] = np.asarray(c)[:n], np.asarray(k)[:n]
    return out, crossed


def direction_costs(packed: Packed, direction, ts) -> tuple[np.ndarray, np.ndarray]:
    """Costs at theta + t * direction for each t (direction in user flat order), and whether
    each point is across a kink from theta. DIR_CHUNK points per call (padded with t = 0), so
    one program serves the checks' stencils whatever their number of points."""
    return direction_costs_many([(packed, direction, ts)])[0]


def direction_costs_many(requests) -> list[tuple[np.ndarray, np.ndarray]]:
    """direction_costs of each (packed, direction, ts) of `requests`, which share one spec and
    batch size (the draws of one property example): their chunks of DIR_CHUNK points go
    dir_slots(bucket) to a call. A slot's costs do not depend on the other slots' contents
    (tests/test_programs.py)."""
    jobs, out = [], []
    for k, (packed, direction, ts) in enumerate(requests):
        V = np.zeros(packed.Wp.size + packed.bp.size)
        V[packed.index] = direction
        VW, Vb = V[:packed.Wp.size].reshape(packed.Wp.shape), V[packed.Wp.size:].reshape(packed.bp.shape)
        ts = np.asarray(ts, np.float64)
        out.append((np.empty(len(ts)), np.empty(len(ts), bool)))
        for s in range(0, len(ts), DIR_CHUNK):
            t = ts[s:s + DIR_CHUNK]
            jobs.append((k, s, len(t), (packed, VW, Vb, np.concatenate([t, np.zeros(DIR_CHUNK - len(t))]))))
    slots = dir_slots(requests[0][0].bucket) if requests else 1
    for at in range(0, len(jobs), slots):
        group = jobs[at:at + slots]
        c, crossed = (np.asarray(a) for a in _run(_direction_call([job for *_, job in group])))
        for slot, (k, s, n, _) in enumerate(group):
            out[k][0][s:s + n], out[k][1][s:s + n] = c[slot, :n], crossed[slot, :n]
    return out
