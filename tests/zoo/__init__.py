"""A zoo of CORRECT implementations, each written independently of backcheck's own backprop in
an idiom people really use; backcheck's regression suite for false alarms (tests/test_zoo.py,
benchmarks/bench_zoo.py). Each module exposes `IMPL` (sklearn_mlp also `CLASSIFIER`) and plugs
in as a user's code does:

    backcheck check --impl tests/zoo/textbook_numpy.py:IMPL

| member | idiom |
| --- | --- |
| jax_user | jax.nn activations at their defaults, optax-style losses, jax.jit(jax.value_and_grad) |
| textbook_numpy | Nielsen's book code: per-sample column vectors, sigma(1 - sigma), nabla sums / N |
| scalar_engine | a micrograd-style scalar autodiff engine (children in sets: summation order varies) |
| sklearn_mlp | scikit-learn's own MLPRegressor / MLPClassifier._backprop through SklearnStyle |
| torch_user | PyTorch autograd with torch.nn.functional at its defaults, float64 and float32 |
| float32_numpy | a batched NumPy backprop in float32 throughout |

The modules are loaded by file path (their folder goes on sys.path), never imported as this
package; this file only holds the table the test and the benchmark share.
"""

# "file.py:attr" -> the optional module it needs (None: backcheck's own dependencies suffice)
MEMBERS = {
    "jax_user.py:IMPL": None,
    "textbook_numpy.py:IMPL": None,
    "scalar_engine.py:IMPL": None,
    "sklearn_mlp.py:IMPL": "sklearn",
    "sklearn_mlp.py:CLASSIFIER": "sklearn",
    "torch_user.py:IMPL": "torch",
    "float32_numpy.py:IMPL": None,
}

# Verdicts that are true positives on a member, not false alarms: (check, worst entry, why).
TRUE_POSITIVES = {
    "sklearn_mlp.py:CLASSIFIER": [
        ("vs_jax", "cost", "scikit-learn clips p to [eps, 1 - eps] inside its reported log loss, so its cost is "
                           "not the bce / softmax_ce of the logits beyond |logit| ~ 36 (its gradients are)"),
    ],
}


def true_positive(member: str, verdict) -> str | None:
    """Why a failed verdict on a member is a known true positive, or None (a false alarm)."""
    for check, entry, why in TRUE_POSITIVES.get(member, ()):
        if verdict.check == check and verdict.status == "failed" and str(verdict.worst) == entry:
            return why
    return None
