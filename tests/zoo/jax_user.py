"""JAX as its users write it: jax.nn activations at their library defaults, optax-style losses,
`jax.jit(jax.value_and_grad(cost))` with JAX's DEFAULT derivative rules (no custom JVPs).

    backcheck check --impl tests/zoo/jax_user.py:IMPL

What users get, kept on purpose (a correct implementation backcheck must not flag):
- jax.nn.sigmoid' = s (1 - s) and jnp.tanh' = (1 + t)(1 - t), computed from the output;
- jax.nn.elu is alpha * expm1(z) for z <= 0, and JAX differentiates expm1 as expm1(z) + 1,
  which cancels for z << 0 (0 instead of e^z below z ~ -37);
- jnp.maximum(0, u) splits its derivative 1/2 : 1/2 at a tie (hinge and perceptron at 0).
float64 needs x64, which this module enables itself: in backcheck's worker process nothing
else would (the reference enables it in the harness's process only).
"""
from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from implementations.protocol import Capabilities  # noqa: E402

ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,   # negative_slope=0.01, jax's default
    "elu": jax.nn.elu,                 # alpha=1.0
    "softplus": jax.nn.softplus,
}

# per-sample losses of the network's output yhat and target t, summed over output units
LOSSES = {
    "mse": lambda yhat, t: 0.5 * jnp.sum((yhat - t) ** 2, axis=-1),
    "l1": lambda yhat, t: jnp.sum(jnp.abs(yhat - t), axis=-1),
    "logistic": lambda yhat, t: jnp.sum(jnp.logaddexp(0.0, -t * yhat), axis=-1),
    "perceptron": lambda yhat, t: jnp.sum(jnp.maximum(0.0, -t * yhat), axis=-1),
    "hinge": lambda yhat, t: jnp.sum(jnp.maximum(0.0, 1.0 - t * yhat), axis=-1),       # optax.hinge_loss
    # optax.sigmoid_binary_cross_entropy
    "bce": lambda z, t: jnp.sum(-t * jax.nn.log_sigmoid(z) - (1.0 - t) * jax.nn.log_sigmoid(-z), axis=-1),
    "softmax_ce": lambda z, t: -jnp.sum(t * jax.nn.log_softmax(z, axis=-1), axis=-1),  # optax.softmax_cross_entropy
}


def cost(params, X, Y, spec):
    h = X
    for layer, (W, b) in zip(spec.layers, params):
        h = ACTIVATIONS[layer.activation](h @ W.T + b)
    data = jnp.mean(LOSSES[spec.loss](h, Y))
    return data + 0.5 * spec.l2 * sum(jnp.sum(W ** 2) for W, _ in params)


# one compile per architecture and batch shape (the spec is static: it picks the functions)
value_and_grad = jax.jit(jax.value_and_grad(cost), static_argnums=3)


class JaxUser:
    name = "zoo-jax-user"
    capabilities = Capabilities(activations={"identity": None, "sigmoid": None, "tanh": None, "relu": None,
                                         "leaky_relu": 0.01, "elu": None, "softplus": None},
                                losses=set(LOSSES), layer_kinds={"dense"}, dtypes={"float64", "float32"},
                                regularizer=True)

    def gradients(self, spec, params, X, Y):
        reason = self.capabilities.supports(spec)
        if reason:  # jax.nn's defaults are all this code uses (leaky_relu 0.01, elu alpha 1)
            raise ValueError(f"not expressible with jax.nn's defaults: {reason}")
        jparams = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
        value, grads = value_and_grad(jparams, jnp.asarray(X), jnp.asarray(Y), spec)
        return np.asarray(value), [(np.asarray(gW), np.asarray(gb)) for gW, gb in grads]


IMPL = JaxUser()
