"""Plugging third_party_mlp.ThirdPartyMLP into backcheck, unchanged, with two adapters:

    backcheck check --impl examples/plugin_adapted.py:IMPL
    pytest --pyargs properties --impl examples/plugin_adapted.py:IMPL

TransposedWeights hands it Omega = W.T and transposes its gradients back; SummedCost divides
the data term of its summed cost (and gradients) by N, leaving the l2 term as it is. The only
glue is `third_party_gradients`, which builds the network the spec describes.
"""
from third_party_mlp import ACTIVATIONS, ThirdPartyMLP  # this file's folder is on sys.path when loaded

from implementations.adapters import SummedCost, TransposedWeights
from implementations.protocol import Capabilities


def third_party_gradients(spec, omega_params, X, Y):
    """The spec's network in the third party's API; params arrive as (Omega, b) pairs."""
    net = ThirdPartyMLP([layer.activation for layer in spec.layers])
    J, d_omegas, d_biases = net.loss_and_grads([o for o, _ in omega_params], [b for _, b in omega_params],
                                               X, Y, lam=spec.l2)
    return J, list(zip(d_omegas, d_biases))


# What it can do; backcheck generates nothing else and lists the rest as not checked.
CAPABILITIES = Capabilities(activations=set(ACTIVATIONS), losses={"mse"}, layer_kinds={"dense"},
                            dtypes={"float64"}, regularizer=True)

IMPL = SummedCost(TransposedWeights(third_party_gradients, capabilities=CAPABILITIES), name="third-party-mlp")
