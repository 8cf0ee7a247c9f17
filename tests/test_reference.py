"""The JAX autodiff reference: really float64, accurate where units saturate, stable at
|z| = 1000, and compiled once per shape bucket rather than per architecture."""
import mpmath
import numpy as np
import pytest

from implementations import numpy_mlp as npm
from reference import activations as A, jax_ref, programs
from reference.spec import LOSSES, Layer, NetworkSpec, init_params, mlp, random_batch

mpmath.mp.dps = 50
Z = [-30.0, -20.0, -12.0, -5.0, -0.5, 0.5, 5.0, 12.0, 20.0, 30.0]


def exact(f, z):
    return float(mpmath.diff(f, mpmath.mpf(z)))


EXACT_DERIVATIVES = {
    "tanh": lambda z: exact(mpmath.tanh, z),
    "sigmoid": lambda z: exact(lambda x: 1 / (1 + mpmath.exp(-x)), z),
    "softplus": lambda z: exact(lambda x: mpmath.log(1 + mpmath.exp(x)), z),
    "elu": lambda z: float(mpmath.exp(z)) if z < 0 else 1.0,
}


def test_x64_is_really_on():
    spec = mlp(3, [4, 1], ["tanh", "identity"], "mse")
    rng = np.random.default_rng(0)
    p = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 5)
    ref = jax_ref.gradients(spec, p, X, Y)
    assert isinstance(ref.cost, float) and ref.flat.dtype == np.float64
    assert ref.cost != float(np.float32(ref.cost))  # a float32 computation could not hold this value
    assert any(g != float(np.float32(g)) for g in ref.flat)


@pytest.mark.parametrize("name", list(EXACT_DERIVATIVES))
def test_reference_derivatives_accurate_where_units_saturate(name):
    """JAX's own rules (1 - t²)... lose relative accuracy at large |z| (tanh' = 0 at z = 20);
    ours must match 50-digit values to a few ulps up to |z| = 30."""
    import jax
    fn = {"tanh": A.tanh, "sigmoid": A.sigmoid, "softplus": A.softplus,
          "elu": lambda z: jax.numpy.where(z > 0, z, A.elu_negative(z, 1.0))}[name]
    d = jax.vmap(jax.grad(fn))(np.array(Z))
    _, d_np = npm.activation(name, 1.0, np.array(Z))
    for z, got, got_np in zip(Z, np.asarray(d), d_np):
        want = EXACT_DERIVATIVES[name](z)
        assert got == pytest.approx(want, rel=8e-16, abs=0), (name, z, "jax reference")
        assert got_np == pytest.approx(want, rel=8e-16, abs=0), (name, z, "numpy implementation")


def test_elu_derivative_at_zero_is_not_split():
    """jnp.minimum splits the derivative at a tie: elu'(0) must be alpha (the left side), not alpha/2."""
    import jax
    assert float(jax.grad(lambda z: A.elu_negative(z, 0.7))(0.0)) == 0.7


def test_default_jax_tanh_rule_is_the_trap_we_avoid():
    import jax
    assert float(jax.grad(jax.numpy.tanh)(20.0)) == 0.0  # the true value is ~1.7e-17
    assert float(jax.grad(A.tanh)(20.0)) == pytest.approx(exact(mpmath.tanh, 20.0), rel=1e-15)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "elu", "identity"])
def test_stable_at_huge_preactivations(act, loss):
    """|z| = 1000 overflows naive exp/log forms; costs and gradients must stay finite."""
    n_out = 3 if loss == "softmax_ce" else 1
    spec = NetworkSpec(1, (Layer(n_out, act),), loss)
    params = [(np.full((n_out, 1), 1000.0), np.zeros(n_out))]
    for x in (1.0, -1.0):
        X = np.array([[x]])
        Y = {"real": np.zeros((1, n_out)), "pm1": np.ones((1, 1)), "01": np.zeros((1, 1)),
             "simplex": np.eye(n_out)[[0]]}[LOSSES[loss]]
        ref = jax_ref.gradients(spec, params, X, Y)
        cost, grads = npm.builtin.gradients(spec, params, X, Y)
        assert np.isfinite(ref.cost) and np.all(np.isfinite(ref.flat)), (act, loss, x)
        assert np.isfinite(cost) and all(np.all(np.isfinite(g)) for gg in grads for g in gg), (act, loss, x)


def test_one_compiled_function_serves_a_whole_bucket():
    rng = np.random.default_rng(0)
    specs = [mlp(3, [5, 2], ["tanh", "identity"], "mse"), mlp(7, [2, 9], ["relu", "sigmoid"], "l1"),
             mlp(16, [16, 3], ["elu", "softplus"], "softmax_ce"), mlp(5, [1, 12], ["abs", "tanh"], "mse", 0.1)]
    assert len({jax_ref.bucket_of(s, 9) for s in specs}) == 1
    for s in specs[:1]:
        p = init_params(s, rng)
        jax_ref.gradients(s, p, *random_batch(s, rng, 9))
    size = programs.count()
    for s in specs[1:]:
        p = init_params(s, rng)
        jax_ref.gradients(s, p, *random_batch(s, rng, 9))
    assert programs.count() == size  # no new compilation


def test_padding_is_exact_for_maxout_and_deep_nets():
    """A 3-layer net padded to a depth-4 bucket, with maxout, against the hand-written NumPy pass."""
    rng = np.random.default_rng(5)
    spec = NetworkSpec(3, (Layer(4, "maxout", pieces=3), Layer(5, "tanh"), Layer(2, "identity")), "mse", 0.1)
    p = init_params(spec, rng)
    X, Y = random_batch(spec, rng, 6)
    ref = jax_ref.gradients(spec, p, X, Y)
    cost, grads = npm.builtin.gradients(spec, p, X, Y)
    assert jax_ref.bucket_of(spec, 6).depth > spec.depth   # padded layers pass h through exactly
    assert ref.cost == pytest.approx(cost, rel=1e-14)
    for (gW, gb), (rW, rb) in zip(grads, ref.grads):
        np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-15)


def test_compiled_programs_are_stored_and_loaded_by_a_later_process(tmp_path):
    """A second process loads the executables the first stored (and computes the same
    gradient); a corrupted file is recompiled, not trusted; with JAX's own persistent cache
    turned on by the user, what is stored still runs when loaded."""
    import json
    import os
    import subprocess
    import sys
    code = ("import json, numpy as np\n"
            "from reference import jax_ref, programs\n"
            "from reference.spec import mlp, init_params, random_batch\n"
            "s = mlp(3, [5, 2], ['tanh', 'relu'], 'l1'); rng = np.random.default_rng(1)\n"
            "args = (s, init_params(s, rng), *random_batch(s, rng, 6))\n"
            "r = jax_ref.gradients(*args)\n"
            "programs.settle()   # the optimized build, in place of a fast one\n"
            "again = jax_ref.gradients(*args)\n"
            "print(json.dumps([programs.stats, again.flat.tolist(), r.flat.tolist()]))\n")

    def run(cache, **env):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "BACKCHECK_JAX_CACHE": str(cache), **env})
        return json.loads(out.stdout.strip().splitlines()[-1])
    first, second = run(tmp_path / "a"), run(tmp_path / "a")
    assert first[0] == {"loaded": 0, "compiled": 1, "fast": 1}   # built fast for the call, optimized behind it
    assert second[0] == {"loaded": 1, "compiled": 0, "fast": 0}
    assert second[1] == first[1]   # the stored build computes what it computed before it was stored
    np.testing.assert_allclose(first[2], first[1], rtol=1e-13, atol=1e-300)   # the fast build: to rounding
    for f in (tmp_path / "a" / "executables").glob("*.bin"):
        f.write_bytes(f.read_bytes()[:100])
    third = run(tmp_path / "a")
    assert third[0] == {"loaded": 0, "compiled": 1, "fast": 1} and third[1] == first[1]
    jax_cache = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    run(tmp_path / "b", **jax_cache)   # fills JAX's cache
    run(tmp_path / "c", **jax_cache)   # compiles again with JAX's cache warm, and stores
    assert run(tmp_path / "c", **jax_cache)[:2] == [{"loaded": 1, "compiled": 0, "fast": 0}, first[1]]
