"""Finding implementations by name: 'builtin', 'module:attr', 'path/to/file.py:attr'."""
from __future__ import annotations

import importlib
import importlib.util
import os


class LoadError(Exception):
    """An implementation could not be found, imported or does not satisfy the protocol."""


def _resolve(spec: str):
    if spec in ("builtin", "numpy-builtin"):
        from implementations.numpy_mlp import builtin
        return builtin
    if ":" not in spec:
        raise LoadError(f"{spec!r}: expected 'builtin', 'module:attr' or 'path/to/file.py:attr'")
    target, attr = spec.rsplit(":", 1)
    try:
        if target.endswith(".py") or os.sep in target:
            if not os.path.exists(target):
                raise LoadError(f"{spec!r}: no such file {target!r}")
            name = "backcheck_plugin_" + os.path.splitext(os.path.basename(target))[0]
            mod_spec = importlib.util.spec_from_file_location(name, target)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except LoadError:
        raise
    except Exception as e:
        raise LoadError(f"{spec!r}: importing {target!r} failed: {type(e).__name__}: {e}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise LoadError(f"{spec!r}: module {target!r} has no attribute {attr!r}") from None
    return obj() if isinstance(obj, type) else obj


def load(spec: str, isolate: bool = False):
    impl = _resolve(spec)
    for need in ("name", "capabilities", "gradients"):
        if not hasattr(impl, need):
            raise LoadError(f"{spec!r}: does not satisfy the Implementation protocol (no {need!r})")
    return impl
