"""A network given on the command line (`backcheck check --network ...`): its spec from widths
and names or from a JSON file, its parameters and batch from an .npz or drawn from a seed.
Every problem is a SpecError whose one-line message names the flag, the file and the field.

    --network 784,128,10 --activation relu --loss softmax_ce     n_in, hidden widths..., n_out
    --network-spec net.json      NetworkSpec.to_dict(): {"n_in": 784, "layers": [{"width": 128,
                                 "activation": "relu"}, ...], "loss": "softmax_ce", "l2": 0, "dtype": "float64"}
    --params net.npz             W1, b1, W2, b2, ... (W: (n_out, n_in)) and/or X, Y; what it leaves
                                 out is drawn from --seed. Y may be a vector of class labels for
                                 softmax_ce (one-hot), or of targets for a single output.
"""
from __future__ import annotations

import json
import shlex
import zipfile

import numpy as np

from properties.scale_checks import NetworkCase
from reference.spec import (ACTIVATIONS, LOSSES, Layer, NetworkSpec, SpecError, check_batch, init_params,
                            one_hot, random_batch)

_LAYER_FIELDS = {"width", "activation", "alpha", "pieces"}
_SPEC_FIELDS = {"n_in", "layers", "loss", "l2", "dtype"}


def spec_from_widths(widths: str, activation: str, output_activation: str, loss: str, l2: float,
                     dtype: str) -> NetworkSpec:
    try:
        sizes = [int(w) for w in widths.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise SpecError(f"--network: expected positive integers n_in,width,...,n_out (at least two), got {widths!r}")
    for flag, name in (("--activation", activation), ("--output-activation", output_activation)):
        if name not in ACTIVATIONS or name == "maxout":   # maxout needs pieces: a spec file says how many
            raise SpecError(f"{flag}: unknown activation {name!r}; known: "
                            f"{', '.join(a for a in ACTIVATIONS if a != 'maxout')} (maxout: use --network-spec)")
    if loss not in LOSSES:
        raise SpecError(f"--loss: unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    acts = [activation] * (len(sizes) - 2) + [output_activation]
    return NetworkSpec(sizes[0], tuple(Layer(w, a) for w, a in zip(sizes[1:], acts)), loss, l2, dtype)


def spec_from_file(path: str) -> NetworkSpec:
    where = f"--network-spec {path}"
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except OSError as e:
        raise SpecError(f"{where}: cannot read it ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SpecError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a JSON object with n_in and layers, got {type(d).__name__}")
    unknown = sorted(set(d) - _SPEC_FIELDS)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(sorted(_SPEC_FIELDS))})")
    for key in ("n_in", "layers"):
        if key not in d:
            raise SpecError(f"{where}: missing field {key!r}")
    if not isinstance(d["layers"], list):
        raise SpecError(f"{where}: layers: expected a list of layer objects")
    for i, layer in enumerate(d["layers"]):
        if not isinstance(layer, dict):
            raise SpecError(f"{where}: layers[{i}]: expected an object with width and activation")
        bad = sorted(set(layer) - _LAYER_FIELDS)
        if bad:
            raise SpecError(f"{where}: layers[{i}]: unknown field {bad[0]!r} (fields: {', '.join(sorted(_LAYER_FIELDS))})")
        if "width" not in layer:
            raise SpecError(f"{where}: layers[{i}]: missing field 'width'")
    try:
        return NetworkSpec.from_dict(d)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None


def _load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except OSError as e:
        raise SpecError(f"--params {path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, zipfile.BadZipFile, EOFError) as e:
        raise SpecError(f"--params {path}: not a NumPy .npz of plain arrays ({e})") from None


def _array(arrays, name: str, where: str, dtype) -> np.ndarray:
    a = arrays[name]
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise SpecError(f"{where}: {name}: expected real numbers, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise SpecError(f"{where}: {name}: contains NaN or inf")
    return a.astype(dtype)


def _targets(spec: NetworkSpec, Y: np.ndarray, where: str, dtype) -> np.ndarray:
    """Y as (N, n_out): class labels one-hot for softmax_ce, a vector as one output column."""
    if Y.ndim == 1 and spec.loss == "softmax_ce":
        if not np.all(Y == np.round(Y)):
            raise SpecError(f"{where}: Y: a vector of class labels must hold integers")
        try:
            return one_hot(Y.astype(np.int64), spec.n_out, dtype)
        except SpecError as e:
            raise SpecError(f"{where}: Y: {e}") from None
    if Y.ndim == 1 and spec.n_out == 1:
        return Y.reshape(-1, 1)
    return Y


def case_from(spec: NetworkSpec, params_path: str | None, batch: int, seed: int, command: str) -> NetworkCase:
    """The case to check: the .npz's parameters and batch where it has them, the rest drawn
    from `seed` (parameters init_params, a batch of `batch` samples random_batch)."""
    if batch < 1:
        raise SpecError(f"--batch: must be a positive integer, got {batch}")
    rng = np.random.default_rng(seed)
    params, (X, Y) = init_params(spec, rng), random_batch(spec, rng, batch)
    if params_path:
        where = f"--params {params_path}"
        arrays = _load_npz(params_path)
        names = [f"{p}{j}" for j in range(1, spec.depth + 1) for p in "Wb"]
        unknown = sorted(set(arrays) - set(names) - {"X", "Y"})
        if unknown:
            raise SpecError(f"{where}: unknown array {unknown[0]!r} (a {spec.depth}-layer network takes "
                            f"{', '.join(names)}, X, Y)")
        given = [n for n in names if n in arrays]
        if given and len(given) < len(names):
            raise SpecError(f"{where}: missing {next(n for n in names if n not in arrays)} "
                            f"(give all of {', '.join(names)} or none)")
        if ("X" in arrays) != ("Y" in arrays):
            raise SpecError(f"{where}: {'Y' if 'X' in arrays else 'X'} missing (give X and Y together, or neither)")
        dt = np.dtype(spec.dtype)
        if given:
            params = []
            for j, (ws, bs) in enumerate(spec.shapes(), start=1):
                W, b = _array(arrays, f"W{j}", where, dt), _array(arrays, f"b{j}", where, dt)
                for name, a, shape in ((f"W{j}", W, ws), (f"b{j}", b, bs)):
                    if a.shape != shape:
                        raise SpecError(f"{where}: {name}: shape {a.shape}, expected {shape} for {spec.describe()}")
                params.append((W, b))
        if "X" in arrays:
            X = _array(arrays, "X", where, dt)
            Y = _targets(spec, _array(arrays, "Y", where, dt), where, dt)
            try:
                check_batch(spec, X, Y)
            except SpecError as e:
                raise SpecError(f"{where}: {e}") from None
    return NetworkCase.make(spec, params, X, Y, direction_seed=seed, command=command)


def command_line(argv: list[str]) -> str:
    """The `backcheck check` command that rebuilds this case, for reproducers (--impl and the
    output options left out: the reproducer adds the implementation)."""
    keep, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--impl", "--out", "-k"):
            skip = True
            continue
        if a.startswith(("--impl=", "--out=", "-k=")) or a in ("-v", "--verbose"):
            continue
        keep.append(a)
    return "backcheck " + shlex.join(keep)
