"""The reference at scale: JAX gradients and every finite-difference cost of a real-size MLP, in
the network's exact shapes (one compiled program per architecture, no padding).

Why not reference.jax_ref: it pads every network into a square shape bucket so that a few
programs serve all the small networks Hypothesis draws, and evaluates each perturbed cost as a
forward pass of the padded network. A 784-128-10 MNIST net is a 1024 x 1024 bucket per layer,
and its 203,540 central-difference costs would be as many padded forward passes.

The structure used instead: changing W[l][r, j] by delta changes only row r of layer l's
pre-activation, by delta * h_{l-1}[:, j] (a bias: by delta). So a perturbed cost needs unit r's
new activation, a rank-1 change Δh_r ⊗ W[l+1][:, r] of the next pre-activation, and full layers
only after that, all for a chunk of P perturbations at once ((P, N, width) arrays, chunked so
that one such array stays under CHUNK_ELEMENTS). A perturbation of the first layer of a
784-128-10 net costs a (N, 10) update, not a (N, 784) x (784, 128) product.

The cost, the kink zones and the activation pattern are jax_ref's own forms (its activation
branches, maxout selection and losses), so a structured cost is the padded reference's cost to
rounding, and `crossed` is the same test: the perturbed network's pattern (which side of every
kink each unit, maxout group and loss term is on) differs from the unchanged network's.
`Network.costs(idx, values)` is the `costs` evaluator the checkers of reference.fd take.
"""
from __future__ import annotations

import hashlib
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from reference import jax_ref, programs
from reference.spec import NetworkSpec, check_batch, check_params, flatten, unflatten

import jax  # after jax_ref, which enables float64
import jax.numpy as jnp

CHUNK_ELEMENTS = 1 << 21   # elements of one (P, N, width) array of a chunk: 16 MB in float64
_BRANCHES = jax_ref._act_branches()
_NO_MASK = True            # jax_ref's losses mask padded output units; exact shapes have none


def _activate(layer, z, zone, side):
    """A layer's activation on pre-activations z (..., rows): (h (..., width), the kink pattern
    (None for a smooth layer), units within the kink zone). The forms are jax_ref's."""
    if layer.activation == "maxout":
        k, m = layer.pieces, layer.width
        lead = z.shape[:-1]
        # rows i*k + p -> jax_ref's (batch, piece, unit) layout
        zg = z.reshape(-1, m, k).transpose(0, 2, 1)
        zn = jnp.broadcast_to(zone, z.shape).reshape(-1, m, k).transpose(0, 2, 1)
        value, winner, tie = jax_ref._select_piece(zg, jnp.ones(k, bool), zn, side)
        return value.reshape(*lead, m), winner.reshape(*lead, m), tie.reshape(*lead, m)
    branch = jax_ref._ACT_BRANCH[layer.activation]
    h = _BRANCHES[branch](z, layer.param, zone, side)
    if branch in jax_ref._KINK_ACT_BRANCH:  # elu's 0 too: see jax_ref._forward
        return h, z > 0, jnp.abs(z) <= zone
    return h, None, None


def _loss_kink_arg(spec):
    return jax_ref._LOSS_KINK_ARG[jax_ref._LOSS_BRANCH[spec.loss]]


def _zabs(h, W, b, floor):
    """|W| |h| + |b| (+ the underflow level, jax_ref.underflow_floor): the magnitude a
    pre-activation's rounding error is relative to."""
    return jax.lax.stop_gradient(jnp.abs(h) @ jnp.abs(W).T + jnp.abs(b) + jax_ref.underflow_magnitude(W, floor))


def _forward(spec: NetworkSpec, zone_c: float, Ws, bs, eps, X, Y, side: int):
    """The cost and everything the structured evaluations start from: per layer z, h, the
    kink zone and the pattern; the loss's zone and pattern; units on a kink; the cost's
    magnitude (jax_ref.ReferenceResult.loss_cancellation) and the output pre-activations."""
    n = X.shape[0]
    h, hs, zs, zones, pats, on_kink = X, [X], [], [], [], 0
    floor = jax_ref.underflow_floor(spec)
    for layer, W, b, e in zip(spec.layers, Ws, bs, eps):
        zabs = _zabs(h, W, b, floor)
        z = h @ W.T + b + e
        h, pat, at = _activate(layer, z, zone_c * zabs, side)
        if at is not None:
            on_kink = on_kink + jnp.sum(at)
        zs.append(z), hs.append(h), zones.append(zone_c * zabs), pats.append(pat)
    last = spec.layers[-1]
    z_out, zabs_out = zs[-1], zabs
    if last.activation == "maxout":   # jax_ref: the unit's largest piece
        z_out = z_out.reshape(n, last.width, last.pieces).max(axis=2)
        zabs_out = zabs_out.reshape(n, last.width, last.pieces).max(axis=2)
    loss_zone = zone_c * (zabs_out + jnp.abs(Y) + 1.0)
    per_sample, magnitude = jax_ref._LOSS_FNS[spec.loss](h, Y, _NO_MASK, loss_zone, side)
    kink_arg = _loss_kink_arg(spec)
    loss_pat = None if kink_arg is None else kink_arg(h, Y) > 0
    if kink_arg is not None:
        on_kink = on_kink + jnp.sum(jnp.abs(kink_arg(h, Y)) <= loss_zone)
    sq = sum(jnp.sum(W * W) for W in Ws)
    reg = 0.5 * spec.l2 * sq
    cost = jnp.sum(per_sample) / n + reg
    cost_abs = jax.lax.stop_gradient(jnp.sum(magnitude) / n + reg)
    state = (zs, hs, zones, pats, loss_zone, loss_pat, sq)
    return cost, (state, on_kink, cost_abs, z_out)


@lru_cache(maxsize=64)
def _programs(spec: NetworkSpec, n: int) -> dict:
    """The entry points of one architecture and batch size, as functions of arrays only (what
    they depend on besides their arguments is closed over): base, grad0 / grad1 (the two
    one-sided conventions at a kink), directional, perturbed0 ... (one per layer)."""
    zone_c = jax_ref.kink_zone_factor(spec, n)

    def base(Ws, bs, X, Y):
        eps = [0.0] * spec.depth
        cost, (state, *_) = _forward(spec, zone_c, Ws, bs, eps, X, Y, 0)
        return cost, state

    def grad_at(side):
        def grad(Ws, bs, eps, X, Y):
            def f(Ws, bs, eps):
                cost, (_, on_kink, cost_abs, z_out) = _forward(spec, zone_c, Ws, bs, eps, X, Y, side)
                return cost, (on_kink, cost_abs, z_out)
            (cost, aux), g = jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(Ws, bs, eps)
            return cost, aux, g
        return grad

    def directional(Ws, bs, VW, Vb, X, Y, base_pats, base_loss_pat, ts):
        def one(t):
            eps = [0.0] * spec.depth
            cost, (state, *_) = _forward(spec, zone_c, [W + t * V for W, V in zip(Ws, VW)],
                                         [b + t * V for b, V in zip(bs, Vb)], eps, X, Y, 0)
            return cost, _moved(state[3], state[5], base_pats, base_loss_pat, lead=0)
        return jax.vmap(one)(ts)

    out = {"base": base, "grad0": grad_at(0), "grad1": grad_at(1), "directional": directional}
    out.update({f"perturbed{l}": _perturbed_program(spec, l) for l in range(spec.depth)})
    return out


# A small network's programs run in microseconds and take most of a second each to compile
# (the property tests compile a few per architecture drawn): there, compiling at XLA's lowest
# optimization level halves the time; it changes speed, not the IEEE results (no fast math).
QUICK_COMPILE_WORK = 1 << 14   # parameters x samples at or below which compiling fast pays
_QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@lru_cache(maxsize=256)
def _jitted(spec: NetworkSpec, n: int, what: str):
    quick = spec.n_params * n <= QUICK_COMPILE_WORK
    return jax.jit(_programs(spec, n)[what], compiler_options=_QUICK_COMPILE if quick else None)


@lru_cache(maxsize=64)
def _digest(spec: NetworkSpec, n: int) -> str:
    """What a stored executable depends on besides reference.programs' environment key (which
    covers jax_ref's source): this module's source, the architecture and the batch size."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(repr((spec.to_dict(), n)).encode())
    return h.hexdigest()[:24]


def _moved(pats, loss_pat, base_pats, base_loss_pat, lead: int):
    """Whether any kink pattern differs from the unchanged network's (reduced over all but the
    first `lead` axes)."""
    moved = False
    for p, q in zip(list(pats) + [loss_pat], list(base_pats) + [base_loss_pat]):
        if p is not None:
            moved = moved | jnp.any(p != q, axis=tuple(range(lead, p.ndim)))
    return moved


def _perturbed_program(spec: NetworkSpec, l: int):
    """Costs of a chunk of perturbations of layer l (row r, input column j, a bias?, delta =
    new - old, old) and whether each moved any unit across a kink; see the module docstring."""
    layers, L = spec.layers, spec.depth
    layer, kink_arg = layers[l], _loss_kink_arg(spec)

    def run(Ws, bs, Y, state, r, j, is_bias, delta, old):
        zs, hs, zones, pats, loss_zone, loss_pat, sq = state
        n, P = Y.shape[0], r.shape[0]
        col = jnp.where(is_bias[:, None], 1.0, hs[l].T[j])           # (P, N): dz of row r per unit delta
        zc = zs[l].T[r] + delta[:, None] * col                         # row r's new pre-activation
        if layer.activation == "maxout":
            k, m = layer.pieces, layer.width
            u, piece = r // k, r % k
            group = zs[l].reshape(n, m, k)[:, u, :].transpose(1, 0, 2)   # unit u's pieces (P, N, k)
            group = jnp.where(jnp.arange(k) == piece[:, None, None], zc[..., None], group)
            zone = zones[l].reshape(n, m, k)[:, u, :].transpose(1, 0, 2)
            # as one maxout unit per (change, sample): jax_ref's (batch, piece, unit) layout
            hc, pat, _ = jax_ref._select_piece(group.reshape(P * n, k, 1), jnp.ones(k, bool),
                                               zone.reshape(P * n, k, 1), 0)
            hc, pat = hc.reshape(P, n), pat.reshape(P, n)
        else:
            u = r
            hc, pat, _ = _activate(layer, zc, zones[l].T[r], 0)
        crossed = jnp.zeros(P, bool) if pat is None else jnp.any(pat != pats[l].T[u], axis=1)
        if l == L - 1:   # the output changes in unit u only
            y = jnp.where(jnp.arange(layer.width) == u[:, None, None], hc[..., None], hs[L][None])
        else:            # the next pre-activation by a rank-1 term, then full layers
            dh = hc - hs[l + 1].T[u]
            z = zs[l + 1][None] + dh[..., None] * Ws[l + 1].T[u][:, None, :]
            for k in range(l + 1, L):
                y, pat, _ = _activate(layers[k], z, zones[k], 0)
                if pat is not None:
                    crossed = crossed | jnp.any(pat != pats[k], axis=(1, 2))
                if k + 1 < L:
                    z = y @ Ws[k + 1].T + bs[k + 1]
        per_sample, _ = jax_ref._LOSS_FNS[spec.loss](y, Y, _NO_MASK, loss_zone, 0)
        if kink_arg is not None:
            crossed = crossed | jnp.any((kink_arg(y, Y) > 0) != loss_pat, axis=(1, 2))
        # the changed weight's square: (w + delta)² - w² = delta (2w + delta), as jax_ref
        reg = 0.5 * spec.l2 * (sq + jnp.where(is_bias, 0.0, delta * (2 * old + delta)))
        return jnp.sum(per_sample, axis=-1) / n + reg, crossed
    return run


def chunk_size(spec: NetworkSpec, n: int, layer: int, count: int) -> int:
    """Perturbations per compiled call for `count` changes of `layer`: 16 * 4^k (few compiled
    shapes), the smallest that holds them all, capped so that one (P, N, width) array of the
    layers downstream (the outputs, for the last layer) stays under CHUNK_ELEMENTS."""
    widest = max([l.rows for l in spec.layers[layer + 1:]] + [spec.n_out])
    cap = max(16, CHUNK_ELEMENTS // (n * widest))
    size = 16
    while size < count and size * 4 <= cap:
        size *= 4
    return size


class Network:
    """One network, its parameters and a batch, for the reference at scale: `gradients()` (as
    jax_ref.gradients) and the batched evaluators the finite-difference checkers take."""

    def __init__(self, spec: NetworkSpec, params, X, Y, persist: bool = False):
        params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
        X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
        check_batch(spec, X, Y)
        params = check_params(spec, params)
        self.spec, self.n = spec, X.shape[0]
        self.theta = flatten(params)
        self._Ws = [jnp.asarray(W) for W, _ in params]
        self._bs = [jnp.asarray(b) for _, b in params]
        self._X, self._Y = jnp.asarray(X), jnp.asarray(Y)
        self.persist = persist
        # where each layer's parameters start in the flat order: W row-major, then b
        sizes = [w[0] * w[1] + b[0] for w, b in spec.shapes()]
        self._starts = np.concatenate([[0], np.cumsum(sizes)])

    def _call(self, what: str, *args, shapes: tuple = ()):
        """Entry point `what` of this architecture (_programs), compiled once per argument
        shape (`shapes`: what besides (spec, n) determines them). persist: the executable is
        also kept on disk by reference.programs, for a network checked again in a later run
        (the property tests' many small architectures stay in memory)."""
        if self.persist:
            key = (f"structured-{what}-{_digest(self.spec, self.n)}",) + shapes
            return programs.compiled(key, _programs(self.spec, self.n)[what], args)(*args)
        return _jitted(self.spec, self.n, what)(*args)

    @cached_property
    def _state(self):
        return self._call("base", self._Ws, self._bs, self._X, self._Y)[1]

    def _grad_at(self, side: int):
        eps = [jnp.zeros((self.n, l.rows)) for l in self.spec.layers]
        cost, (on_kink, cost_abs, z_out), (gW, gb, geps) = self._call(f"grad{side}", self._Ws, self._bs, eps, self._X, self._Y)
        flat = np.concatenate([np.concatenate([np.ravel(w), np.ravel(b)]) for w, b in zip(gW, gb)])
        return float(cost), int(on_kink), float(cost_abs), np.asarray(z_out), flat, [np.asarray(d) for d in geps]

    def gradients(self) -> jax_ref.ReferenceResult:
        """Cost, gradients and deltas as jax_ref.gradients gives them (the same fields)."""
        cost, on_kink, cost_abs, z_out, flat, deltas = self._grad_at(0)
        out = self.spec.layers[-1]
        d = deltas[-1] if out.pieces == 1 else deltas[-1].reshape(self.n, out.width, out.pieces).sum(2)
        cancel = cost_abs - abs(cost)
        res = jax_ref.ReferenceResult(cost, unflatten(self.spec, flat), deltas, flat, on_kink,
                                      output_sensitivity=float(np.sum(np.abs(z_out * d))) + cancel,
                                      loss_cancellation=cancel)
        if on_kink:
            *_, res.flat_other_side, res.deltas_other_side = self._grad_at(1)
        return res

    def costs(self, idx, values) -> tuple[np.ndarray, np.ndarray]:
        """Costs with flat parameter idx[i] set to values[i] (spec.flatten order), and whether
        each change moved a unit across a kink: reference.fd's `costs` evaluator."""
        idx = np.asarray(idx, np.int64)
        values = np.asarray(values, np.float64)
        out, crossed = np.empty(idx.size), np.empty(idx.size, bool)
        layer_of = np.searchsorted(self._starts, idx, side="right") - 1
        for l in np.unique(layer_of):
            at = np.flatnonzero(layer_of == l)
            out[at], crossed[at] = self._layer_costs(int(l), idx[at], values[at])
        return out, crossed

    def _layer_costs(self, l: int, idx, values):
        (rows, n_in), _ = self.spec.shapes()[l]
        local = idx - self._starts[l]
        is_bias = local >= rows * n_in
        r = np.where(is_bias, local - rows * n_in, local // n_in)
        j = np.where(is_bias, 0, local % n_in)
        old = self.theta[idx]
        delta = values - old   # the representable step the checkers divide by (reference.fd)
        size = chunk_size(self.spec, self.n, l, idx.size)
        pad = -idx.size % size   # no-op changes (delta 0) fill the last chunk to a compiled shape
        args = [np.pad(a, (0, pad)).reshape(-1, size) for a in (r, j, is_bias, delta, old)]
        # every chunk dispatched before any result is read: JAX runs them while Python goes on
        results = [self._call(f"perturbed{l}", self._Ws, self._bs, self._Y, self._state, *chunk, shapes=(size,))
                   for chunk in zip(*args)]
        out = np.concatenate([np.asarray(c) for c, _ in results])[:idx.size]
        crossed = np.concatenate([np.asarray(k) for _, k in results])[:idx.size]
        return out, crossed

    def direction_costs(self, direction, ts) -> tuple[np.ndarray, np.ndarray]:
        """Costs at theta + t * direction for each t, and whether each point is across a kink
        from theta (as jax_ref.direction_costs)."""
        V = unflatten(self.spec, np.asarray(direction, np.float64))
        pats, loss_pat = self._state[3], self._state[5]
        ts = jnp.asarray(ts, jnp.float64)
        c, k = self._call("directional", self._Ws, self._bs, [jnp.asarray(W) for W, _ in V], [jnp.asarray(b) for _, b in V],
                          self._X, self._Y, pats, loss_pat, ts, shapes=(ts.size,))
        return np.asarray(c), np.asarray(k)


def network(spec: NetworkSpec, params, X, Y) -> Network:
    return Network(spec, params, X, Y)


def gradients(spec: NetworkSpec, params, X, Y) -> jax_ref.ReferenceResult:
    """jax_ref.gradients in exact shapes: for networks too wide for its shape buckets."""
    return Network(spec, params, X, Y).gradients()
