"""The JAX autodiff reference: cost, gradients and per-layer deltas by `jax.grad`, in float64.

Compiling per architecture would cost 100-200 ms each time Hypothesis draws a new network, so
every network is padded into a *shape bucket* (depth, width, batch and maxout pieces rounded
up) and masked; activations and the loss are picked at run time with `lax.switch`. `jax.jit`
then caches one executable per bucket, reused by every architecture that fits it.

Padding is exact, not approximate: padded weights and biases are zero, so padded units feed
nothing forward (their columns in the next W are zero); padded output units and samples are
masked out of the loss; layers past the network's depth pass h through unchanged (`where`),
so their parameters get exactly zero gradient.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from reference import activations as A  # noqa: E402
from reference.spec import LOSSES, NetworkSpec, check_batch, check_params  # noqa: E402

# Dense activations by branch; the generalized ReLU branch covers relu / leaky / abs.
_ACT_BRANCH = {"identity": 0, "relu": 1, "leaky_relu": 1, "abs": 1, "generalized_relu": 1,
               "sigmoid": 2, "tanh": 3, "softplus": 4, "elu": 5, "maxout": 0}
_LOSS_BRANCH = {name: i for i, name in enumerate(LOSSES)}
FD_CHUNK = 256  # perturbed parameter sets evaluated per compiled call


def _act_branches():
    return [
        lambda z, a: z,
        lambda z, a: jnp.where(z > 0, z, a * z),
        lambda z, a: A.sigmoid(z),
        lambda z, a: A.tanh(z),
        lambda z, a: A.softplus(z),
        lambda z, a: jnp.where(z > 0, z, a * jnp.expm1(jnp.minimum(z, 0.0))),
    ]


def _elementwise(f):
    """A loss summed over the (masked) output units."""
    return lambda y, t, m: jnp.sum(jnp.where(m, f(y, t), 0.0), axis=-1)


def _softmax_ce(y, t, m):
    z = jnp.where(m, y, -jnp.inf)
    zmax = lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    lse = zmax[..., 0] + jnp.log(jnp.sum(jnp.exp(z - zmax), axis=-1))
    return lse * jnp.sum(t, axis=-1) - jnp.sum(jnp.where(m, t * y, 0.0), axis=-1)


_LOSS_FNS = {
    "mse": _elementwise(lambda y, t: 0.5 * (t - y) ** 2),
    "l1": _elementwise(lambda y, t: jnp.abs(t - y)),
    "logistic": _elementwise(lambda y, t: A.softplus(-t * y)),
    "perceptron": _elementwise(lambda y, t: jnp.where(-t * y > 0, -t * y, 0.0)),
    "hinge": _elementwise(lambda y, t: jnp.where(1 - t * y > 0, 1 - t * y, 0.0)),
    "bce": _elementwise(lambda y, t: A.softplus((1 - 2 * t) * y)),
    "softmax_ce": _softmax_ce,
}
assert list(_LOSS_FNS) == list(LOSSES)


def _cost(Wp, bp, eps, X, Y, meta):
    """The padded network's cost. Wp (D, K, H, H), bp (D, K, H), eps (D, N, K, H) is added to
    the pre-activations so that dC/d eps gives the deltas dC/dz."""
    acts, alphas, is_maxout, piece_mask, active, out_mask, smask, loss_code, l2, n = meta
    h = X
    branches = _act_branches()
    for j in range(Wp.shape[0]):
        z = jnp.einsum("nw,kvw->nkv", h, Wp[j]) + bp[j][None] + eps[j]
        dense = lax.switch(acts[j], branches, z[:, 0, :], alphas[j])
        pieces = jnp.where(piece_mask[j][None, :, None], z, -jnp.inf).max(axis=1)
        h_new = jnp.where(is_maxout[j], pieces, dense)
        h = jnp.where(active[j], h_new, h)
    per_sample = lax.switch(loss_code, list(_LOSS_FNS.values()), h, Y, out_mask[None, :])
    return jnp.sum(jnp.where(smask, per_sample, 0.0)) / n + 0.5 * l2 * jnp.sum(Wp * Wp)


_value_and_grad = jax.jit(jax.value_and_grad(_cost, argnums=(0, 1, 2)))


def _perturbed_costs(Wp, bp, eps, X, Y, meta, idx, values):
    """Costs with one flat padded-parameter entry set to a new value, for each (idx, value)."""
    nW = Wp.size

    def one(i, v):
        theta = jnp.concatenate([Wp.ravel(), bp.ravel()]).at[i].set(v)
        return _cost(theta[:nW].reshape(Wp.shape), theta[nW:].reshape(bp.shape), eps, X, Y, meta)
    return jax.vmap(one)(idx, values)


_perturbed = jax.jit(_perturbed_costs)


def _direction_costs(Wp, bp, eps, X, Y, meta, VW, Vb, ts):
    return jax.vmap(lambda t: _cost(Wp + t * VW, bp + t * Vb, eps, X, Y, meta))(ts)


_directional = jax.jit(_direction_costs)


def _up(n: int, lo: int) -> int:
    """Round up to a power of two, at least lo."""
    b = lo
    while b < n:
        b *= 2
    return b


@dataclass(frozen=True)
class Bucket:
    depth: int
    width: int
    batch: int
    pieces: int


def bucket_of(spec: NetworkSpec, n: int) -> Bucket:
    width = max([spec.n_in] + [l.width for l in spec.layers])
    return Bucket(depth=spec.depth, width=_up(width, 4), batch=_up(n, 8),
                  pieces=_up(max(l.pieces for l in spec.layers), 1))


_seen_buckets: set = set()
_lock = threading.Lock()


def compiled_buckets() -> int:
    """How many distinct shape buckets this process has used (each costs one compile per entry point)."""
    return len(_seen_buckets)


class Packed:
    """A network, its parameters and a batch laid out in a bucket's padded arrays."""

    def __init__(self, spec: NetworkSpec, params, X, Y):
        check_batch(spec, X, Y)
        params = check_params(spec, params)
        self.spec, self.n = spec, X.shape[0]
        bk = self.bucket = bucket_of(spec, self.n)
        with _lock:
            _seen_buckets.add(bk)
        D, K, H, Nb = bk.depth, bk.pieces, bk.width, bk.batch
        Wp, bp = np.zeros((D, K, H, H)), np.zeros((D, K, H))
        # flat user index -> flat padded index (into concat(Wp.ravel(), bp.ravel()))
        index = []
        n_prev = spec.n_in
        for j, (layer, (W, b)) in enumerate(zip(spec.layers, params)):
            k, m = layer.pieces, layer.width
            rows = np.arange(m * k)
            unit, piece = rows // k, rows % k          # row i*k+p of W is unit i, piece p
            Wp[j, piece, unit, :n_prev] = W
            bp[j, piece, unit] = b
            wi = np.ravel_multi_index((np.full((m * k, n_prev), j), piece[:, None], unit[:, None],
                                       np.arange(n_prev)[None, :]), Wp.shape)
            bi = Wp.size + np.ravel_multi_index((np.full(m * k, j), piece, unit), bp.shape)
            index += [wi.ravel(), bi]
            n_prev = m
        self.index = np.concatenate(index)
        self._layout = [(j, l.pieces, l.width) for j, l in enumerate(spec.layers)]
        Xp, Yp = np.zeros((Nb, H)), np.zeros((Nb, H))
        Xp[:self.n, :spec.n_in], Yp[:self.n, :spec.n_out] = X, Y
        piece_mask = np.zeros((D, K), bool)
        for j, l in enumerate(spec.layers):
            piece_mask[j, :l.pieces] = True
        self.meta = (
            np.array([_ACT_BRANCH[l.activation] for l in spec.layers], np.int32),
            np.array([l.param for l in spec.layers], np.float64),
            np.array([l.activation == "maxout" for l in spec.layers]),
            piece_mask,
            np.ones(D, bool),
            np.arange(H) < spec.n_out,
            np.arange(Nb) < self.n,
            np.int32(_LOSS_BRANCH[spec.loss]),
            np.float64(spec.l2),
            np.float64(self.n),
        )
        self.Wp, self.bp, self.X, self.Y = Wp, bp, Xp, Yp
        self.eps = np.zeros((D, Nb, K, H))
        self.theta = np.concatenate([Wp.ravel(), bp.ravel()])[self.index]  # user flat order

    def args(self):
        return self.Wp, self.bp, self.eps, self.X, self.Y, self.meta

    def unpack_grads(self, gW, gb) -> list:
        flat = np.concatenate([np.asarray(gW).ravel(), np.asarray(gb).ravel()])[self.index]
        from reference.spec import unflatten
        return unflatten(self.spec, flat)

    def unpack_deltas(self, geps) -> list:
        geps = np.asarray(geps)
        out = []
        for j, k, m in self._layout:
            # (Nb, K, H) -> (n, m*k) with column i*k+p = piece p of unit i
            out.append(geps[j, :self.n, :k, :m].transpose(0, 2, 1).reshape(self.n, m * k))
        return out


@dataclass
class ReferenceResult:
    cost: float
    grads: list       # [(gW, gb)] in the shared conventions, float64
    deltas: list      # [dC/dz^j (N, rows_j)], the batch mean included
    flat: np.ndarray  # grads flattened in spec.flatten order


def gradients(spec: NetworkSpec, params, X, Y) -> ReferenceResult:
    """Cost, gradients and deltas of `spec`'s cost at (params, X, Y), in float64."""
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    p = Packed(spec, params, np.asarray(X, np.float64), np.asarray(Y, np.float64))
    cost, (gW, gb, geps) = _value_and_grad(*p.args())
    grads = p.unpack_grads(gW, gb)
    flat = np.concatenate([np.concatenate([g.ravel(), c.ravel()]) for g, c in grads])
    return ReferenceResult(float(cost), grads, p.unpack_deltas(geps), flat)


def perturbed_costs(packed: Packed, idx, values) -> np.ndarray:
    """Costs with user-flat parameter idx[i] set to values[i], all evaluated in a batch."""
    idx = np.asarray(idx)
    values = np.asarray(values, np.float64)
    pidx = packed.index[idx]
    out = np.empty(len(idx))
    for s in range(0, len(idx), FD_CHUNK):
        i, v = pidx[s:s + FD_CHUNK], values[s:s + FD_CHUNK]
        pad = FD_CHUNK - len(i)
        if pad:  # pad with no-op perturbations so every call has the compiled shape
            i = np.concatenate([i, np.full(pad, pidx[0])])
            v = np.concatenate([v, np.full(pad, packed.theta[idx[0]])])
        out[s:s + FD_CHUNK] = np.asarray(_perturbed(*packed.args(), i, v))[:FD_CHUNK - pad]
    return out


def direction_costs(packed: Packed, direction, ts) -> np.ndarray:
    """Costs at theta + t * direction for each t (direction in user flat order)."""
    V = np.zeros(packed.Wp.size + packed.bp.size)
    V[packed.index] = direction
    VW, Vb = V[:packed.Wp.size].reshape(packed.Wp.shape), V[packed.Wp.size:].reshape(packed.bp.shape)
    ts = np.asarray(ts, np.float64)
    return np.asarray(_directional(*packed.args(), VW, Vb, ts))


def pack(spec: NetworkSpec, params, X, Y) -> Packed:
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    return Packed(spec, params, np.asarray(X, np.float64), np.asarray(Y, np.float64))
