"""The JAX reference's amortized time per gradient over ~50 random small architectures, against
the naive design: a fresh `jax.jit` per architecture (what a harness that compiles per
Hypothesis example pays). Both measured here, in this process, with the on-disk compilation
cache off so that every compile is real.

    python benchmarks/bench_reference.py [--archs 50] [--calls 20]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ["BACKCHECK_JAX_CACHE"] = "off"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from reference import activations as A, jax_ref  # noqa: E402
from reference.spec import Layer, NetworkSpec, init_params, random_batch  # noqa: E402

SMOOTH = {"identity": lambda z: z, "tanh": A.tanh, "sigmoid": A.sigmoid, "softplus": A.softplus,
          "relu": lambda z: jnp.where(z > 0, z, 0.0)}


def random_archs(n: int, rng) -> list[NetworkSpec]:
    out = []
    for _ in range(n):
        widths = list(rng.integers(1, 9, size=rng.integers(1, 4))) + [int(rng.integers(1, 4))]
        acts = [str(rng.choice(list(SMOOTH))) for _ in widths]
        out.append(NetworkSpec(int(rng.integers(1, 9)), tuple(Layer(int(w), a) for w, a in zip(widths, acts)), "mse"))
    return out


def naive_grad(spec: NetworkSpec):
    """A fresh, unpadded jitted value_and_grad for one architecture."""
    def cost(params, X, Y):
        h = X
        for layer, (W, b) in zip(spec.layers, params):
            h = SMOOTH[layer.activation](h @ W.T + b)
        return jnp.mean(0.5 * jnp.sum((Y - h) ** 2, axis=1))
    return jax.jit(jax.value_and_grad(cost))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=50)
    ap.add_argument("--calls", type=int, default=20, help="gradient calls per architecture")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    archs = random_archs(args.archs, rng)
    data = []
    for spec in archs:
        p = init_params(spec, rng)
        X, Y = random_batch(spec, rng, int(rng.integers(1, 17)))
        data.append((spec, p, X, Y))
    jax_ref.gradients(*data[0])  # JAX start-up, not a compile we are measuring

    t0 = time.perf_counter()
    for spec, p, X, Y in data:
        for _ in range(args.calls):
            jax_ref.gradients(spec, p, X, Y)
    bucketed = time.perf_counter() - t0
    t0 = time.perf_counter()
    for spec, p, X, Y in data:
        jax_ref.gradients(spec, p, X, Y)
    cached = time.perf_counter() - t0

    t0 = time.perf_counter()
    for spec, p, X, Y in data:
        f = naive_grad(spec)
        for _ in range(args.calls):
            jax.block_until_ready(f([(jnp.asarray(W), jnp.asarray(b)) for W, b in p], X, Y))
    naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    for spec, p, X, Y in data:
        jax.block_until_ready(naive_grad(spec)([(jnp.asarray(W), jnp.asarray(b)) for W, b in p], X, Y))
    naive_one = time.perf_counter() - t0

    n = len(data) * args.calls
    print(f"{len(data)} architectures, {args.calls} gradient calls each, {jax_ref.compiled_buckets()} shape buckets")
    print(f"bucketed reference : {1e3 * bucketed / n:8.3f} ms/gradient amortized (compiles included), "
          f"{1e3 * cached / len(data):.3f} ms/gradient once compiled")
    print(f"fresh jit per arch : {1e3 * naive / n:8.3f} ms/gradient amortized, "
          f"{1e3 * naive_one / len(data):.1f} ms per new architecture")
    print(f"ratio (fresh jit / bucketed), amortized over {args.calls} calls: {naive / bucketed:.1f}x; "
          f"per new architecture (1 call each): {naive_one / cached:.1f}x")


if __name__ == "__main__":
    main()
