"""Accurate JAX forms of the smooth activations, for the autodiff reference.

JAX's default rules differentiate tanh as (1 + t)(1 - t) and the logistic as s (1 - s): both
lose relative accuracy as |z| grows (tanh' is exactly 0 at z = 20, where the true value is
~1.7e-17). A reference has to be right where units saturate, so these carry their own JVPs:
sech^2 computed from exp(-2|z|), and s(z) s(-z). Tested against mpmath in tests/.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _sigmoid(z):
    e = jnp.exp(-jnp.abs(z))
    return jnp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@jax.custom_jvp
def sigmoid(z):
    return _sigmoid(z)


@sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    return _sigmoid(z), _sigmoid(z) * _sigmoid(-z) * t


def sech2(z):
    e = jnp.exp(-2.0 * jnp.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


@jax.custom_jvp
def tanh(z):
    return jnp.tanh(z)


@tanh.defjvp
def _tanh_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    return jnp.tanh(z), sech2(z) * t


@jax.custom_jvp
def softplus(z):
    return jnp.maximum(z, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(z)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    return softplus(z), _sigmoid(z) * t


@jax.custom_jvp
def elu_negative(z, a):
    """a (exp(z) - 1), the negative branch of elu (z clamped to <= 0 inside, so the unused branch
    never overflows). JAX differentiates expm1 as expm1(z) + 1, which cancels catastrophically
    for z << 0 (relative error ~u e^{-z}); and clamping outside with jnp.minimum would halve the
    derivative at z = 0 (JAX splits a tie). The derivative is a exp(min(z, 0)), directly."""
    return a * jnp.expm1(jnp.minimum(z, 0.0))


@elu_negative.defjvp
def _elu_negative_jvp(primals, tangents):
    (z, a), (tz, ta) = primals, tangents
    zn = jnp.minimum(z, 0.0)
    e = jnp.expm1(zn)
    return a * e, a * jnp.exp(zn) * tz + e * ta
