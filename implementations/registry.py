"""Finding implementations by name, checking the protocol, and wrapping them for the harness.

A source string names an implementation in one of four ways:

    builtin                      backcheck's own NumPy backprop (also 'numpy-builtin')
    mypkg.backprop:MLP           module:attr, imported from sys.path (then from the current
                                 directory, as `python -m` would)
    path/to/file.py:IMPL         a file, run as a module with its folder on sys.path
    NAME                         an entry point NAME in the group `backcheck.implementations`
                                 of an installed package (its value is module:attr)

The attribute may be an instance or a class (instantiated with no arguments). `load()` returns
it wrapped: in a worker process (`isolation.IsolatedImplementation`) or, for trusted code,
in-process (`validate.Validated`); both validate every result. All problems are `LoadError`s
with one-line messages naming the source and the problem.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from importlib import metadata

from implementations.errors import LoadError, PluginError
from implementations.protocol import ANY, Capabilities
from reference.spec import ACTIVATIONS

__all__ = ["GROUP", "LoadError", "PluginError", "absolute_source", "describe", "describe_registered", "entry_points",
           "load", "resolve", "resolve_checked"]

GROUP = "backcheck.implementations"
BUILTIN = ("builtin", "numpy-builtin")
FORMS = "'builtin', 'module:attr', 'path/to/file.py:attr' or an entry-point name"


def entry_points() -> dict:
    """name -> EntryPoint for every installed `backcheck.implementations` entry point."""
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def _import_file(source: str, path: str):
    if not os.path.isfile(path):
        raise LoadError(source, f"no such file {path!r}")
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as when running the file: it can import its neighbours
    stem = os.path.splitext(os.path.basename(path))[0]
    # one module per file, even for two plug-ins called impl.py in different folders
    name = f"backcheck_plugin_{stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module  # dataclasses and pickle look the module up by name
    try:
        mod_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_module(target: str):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        # `pytest --impl mypkg.backprop:MLP` from the repository root should find mypkg
        # without installing it, as `python -m pytest` would.
        cwd = os.getcwd()
        if e.name != target.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)
        return importlib.import_module(target)


def resolve(source: str):
    """The object a source string names (not yet checked against the protocol)."""
    source = source.strip()
    if source in BUILTIN:
        from implementations.numpy_mlp import builtin
        return builtin
    if ":" not in source or source.endswith(":"):
        eps = entry_points()
        if source in eps:
            target = eps[source].value
            where = f"entry point {source!r} ({target})"
        else:
            known = f"; registered entry points: {', '.join(sorted(eps))}" if eps else ""
            raise LoadError(source, f"not an implementation source: expected {FORMS}{known}")
    else:
        target, where = source, None
    if ":" not in target:
        raise LoadError(source, f"{where}: an entry point's value must be module:attr")
    module_name, attr = target.rsplit(":", 1)
    is_file = module_name.endswith(".py") or "/" in module_name or os.sep in module_name
    try:
        module = _import_file(source, module_name) if is_file else _import_module(module_name)
    except LoadError:
        raise
    except (Exception, SystemExit) as e:
        from implementations.validate import describe_exception
        raise LoadError(source, f"importing {where or repr(module_name)} failed: "
                                f"{describe_exception(e).removeprefix('raised ')}") from None
    obj = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise LoadError(source, f"{module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except (Exception, SystemExit) as e:
            from implementations.validate import describe_exception
            raise LoadError(source, f"instantiating {attr}() {describe_exception(e)}") from None
    return obj


def absolute_source(source: str) -> str:
    """The same source with a file named by its absolute path, so that a reproducer printed with
    it runs from any folder ('examples/x.py:IMPL' -> '/home/me/repo/examples/x.py:IMPL')."""
    module, sep, attr = source.strip().rpartition(":")
    if sep and (module.endswith(".py") or "/" in module or os.sep in module):
        return f"{os.path.abspath(module)}:{attr}"
    return source


def check_protocol(obj, source: str) -> None:
    """LoadError unless obj has a name, a Capabilities declaration and the declared methods."""
    def no(problem):
        return LoadError(source, f"does not satisfy the Implementation protocol: {problem}")

    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise no(f"name must be a non-empty str, got {name!r}" if hasattr(obj, "name") else "no 'name' attribute")
    caps = getattr(obj, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise no("capabilities must be an implementations.protocol.Capabilities, got "
                 f"{type(caps).__name__}" if hasattr(obj, "capabilities") else "no 'capabilities' attribute")
    needed = ["gradients"] + [m for m in ("intermediates", "perceptron") if getattr(caps, m)]
    for method in needed:
        if not callable(getattr(obj, method, None)):
            why = "" if method == "gradients" else f" (capabilities declare {method}=True)"
            raise no(f"no {method}() method{why}")


def resolve_checked(source: str):
    obj = resolve(source)
    check_protocol(obj, source)
    return obj


def load(source: str, isolate: bool = False, timeout: float | None = None):
    """The implementation named by source, ready for the harness: validated, and run in a
    worker process unless isolate is False (trusted code only). Raises LoadError."""
    if isolate:
        from implementations.isolation import DEFAULT_TIMEOUT, IsolatedImplementation
        return IsolatedImplementation(source, timeout=timeout or DEFAULT_TIMEOUT)
    from implementations.validate import Validated
    return Validated(resolve_checked(source), source)


# --- what is registered ----------------------------------------------------------------------

def describe(impl) -> dict:
    """name, capabilities and the parts of the vocabulary left unchecked, for summaries."""
    caps = impl.capabilities
    return {"name": impl.name, "capabilities": caps.to_dict(), "unchecked": caps.unchecked()}


def _registered_sources() -> list[tuple[str, str]]:
    out = [("builtin", "built-in")]
    out += [(name, f"entry point {ep.value}") for name, ep in sorted(entry_points().items())]
    env = os.environ.get("BACKCHECK_IMPL", "")
    out += [(s.strip(), "$BACKCHECK_IMPL") for s in env.split(",") if s.strip()]
    return out


def _activation_text(caps: Capabilities, names) -> str:
    """tanh, leaky_relu(0.01), elu(any): each declared activation with its parameters."""
    def one(a):
        p = caps.params(a)
        return f"{a}(any)" if p is ANY else f"{a}({', '.join(f'{v:g}' for v in sorted(p))})" if p else a
    return ", ".join(one(a) for a in ACTIVATIONS if a in names) or "none"


def _caps_lines(caps: Capabilities) -> list[str]:
    d = caps.to_dict()
    flags = ", ".join(f"{k}={'yes' if d[k] else 'no'}" for k in ("regularizer", "intermediates", "perceptron"))
    lines = [f"    activations: {_activation_text(caps, caps.activations)}"]
    layout = [f"{what}: {_activation_text(caps, caps.allowed(where))}"
              for where, what in (("hidden", "hidden layers"), ("output", "output layer"))
              if caps.allowed(where) != caps.activations]
    if caps.uniform_hidden:
        layout.append("one activation for all hidden layers")
    if layout:
        lines.append(f"    {';  '.join(layout)}")
    lines += [f"    losses: {', '.join(d['losses'])};  layer kinds: {', '.join(d['layer_kinds'])};  "
              f"dtypes: {', '.join(d['dtypes'])}",
              f"    {flags}"]
    unchecked = caps.unchecked()   # one line per kind of thing left out, never per combination
    lines.append(f"    not checked (not declared): {'' if unchecked else 'nothing'}".rstrip())
    return lines + [f"      {item}" for item in unchecked]


def describe_registered(isolate: bool = True) -> str:
    """Text for `backcheck list`: each registered implementation with its capabilities.
    Plug-ins are loaded in a worker process, so one that crashes on import is listed with
    its error instead of ending the listing."""
    lines = []
    for source, origin in _registered_sources():
        try:
            impl = load(source, isolate=isolate and source not in BUILTIN)
        except PluginError as e:
            lines += [f"{source}  [{origin}]", f"    error: {e}", ""]
            continue
        lines.append(f"{source}  [{origin}]  name: {impl.name}")
        lines += _caps_lines(impl.capabilities)
        lines.append("")
        if hasattr(impl, "close"):
            impl.close()
    return "\n".join(lines).rstrip()
