"""Naming implementations: builtin, module:attr, path/to/file.py:attr, entry points and
$BACKCHECK_IMPL; the protocol check; `backcheck list`; `pytest --impl` for each form."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from implementations import registry
from implementations.errors import LoadError
from implementations.numpy_mlp import builtin
from implementations.validate import Validated
from reference.spec import init_params, mlp, random_batch

ROOT = Path(__file__).resolve().parent.parent
SPEC = mlp(3, [4, 2], ["tanh", "identity"], l2=0.1)


def _case(seed=0):
    rng = np.random.default_rng(seed)
    return (SPEC, init_params(SPEC, rng), *random_batch(SPEC, rng, 5))


def _agrees_with_builtin(impl):
    case = _case()
    cost, grads = impl.gradients(*case)
    ref_cost, ref_grads = builtin.gradients(*case)
    assert abs(cost - ref_cost) <= 1e-12 * abs(ref_cost)
    for (gW, gb), (rW, rb) in zip(grads, ref_grads):
        np.testing.assert_allclose(gW, rW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, rb, rtol=1e-12, atol=1e-15)


@pytest.fixture
def clean_path(monkeypatch):
    """Loading may add folders to sys.path and modules to sys.modules; undo it after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("mypkg", "backcheck_plugin_", "third_party_mlp", "fake_entry_plugin")):
            del sys.modules[name]


@pytest.fixture
def entry_point_dir(tmp_path, monkeypatch, clean_path):
    """An installed-looking distribution with a `backcheck.implementations` entry point:
    a dist-info folder and a module on sys.path, as pip would leave them."""
    (tmp_path / "fake_entry_plugin.py").write_text(textwrap.dedent("""
        from implementations.numpy_mlp import NumpyMLP

        class EntryMLP(NumpyMLP):
            name = "entry-point-mlp"
    """))
    info = tmp_path / "fake_entry_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-entry-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[backcheck.implementations]\nentry-mlp = fake_entry_plugin:EntryMLP\nbroken-entry = fake_entry_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("source, name", [
    ("builtin", "numpy-builtin"),
    ("numpy-builtin", "numpy-builtin"),
    ("implementations.numpy_mlp:builtin", "numpy-builtin"),     # module:attr, an instance
    ("implementations.numpy_mlp:NumpyMLP", "numpy-builtin"),    # module:attr, a class
    ("examples/plugin_adapted.py:IMPL", "third-party-mlp"),     # a file importing its neighbour
    ("tests/plugins/adapted_builtin.py:ALL.__getitem__", None),  # not an implementation: protocol error
])
def test_load_forms(source, name, monkeypatch, clean_path):
    monkeypatch.chdir(ROOT)
    if name is None:
        with pytest.raises(LoadError, match=r"load\(\): does not satisfy the Implementation protocol"):
            registry.load(source)
        return
    impl = registry.load(source)
    assert isinstance(impl, Validated) and impl.name == name and impl.source == source
    _agrees_with_builtin(impl)


def test_module_attr_from_current_directory(monkeypatch, clean_path):
    """`--impl mypkg.backprop:MLP` run from the user's repository finds mypkg uninstalled."""
    monkeypatch.chdir(ROOT / "examples" / "user_repo")
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    impl = registry.load("mypkg.backprop:MLP")
    assert impl.name == "mypkg-mlp"
    _agrees_with_builtin(impl)


def test_files_with_the_same_name_stay_apart(tmp_path, clean_path):
    for sub, name in (("a", "first"), ("b", "second")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "impl.py").write_text(
            f"from implementations.numpy_mlp import NumpyMLP\nclass MLP(NumpyMLP):\n    name = {name!r}\n")
    names = [registry.load(str(tmp_path / sub / "impl.py") + ":MLP").name for sub in ("a", "b")]
    assert names == ["first", "second"]


def test_entry_points(entry_point_dir):
    assert {"entry-mlp", "broken-entry"} <= set(registry.entry_points())
    impl = registry.load("entry-mlp")
    assert impl.name == "entry-point-mlp"
    _agrees_with_builtin(impl)
    iso = registry.load("entry-mlp", isolate=True)  # the worker sees the same installed packages
    try:
        assert iso.name == "entry-point-mlp"
        _agrees_with_builtin(iso)
    finally:
        iso.close()
    with pytest.raises(LoadError, match=r"^implementation 'broken-entry' load\(\): entry point 'broken-entry' "
                                        r"\(fake_entry_plugin\): an entry point's value must be module:attr$"):
        registry.load("broken-entry")


@pytest.mark.parametrize("source, problem", [
    ("nonsense", r"not an implementation source: expected 'builtin', 'module:attr', 'path/to/file\.py:attr' "
                 r"or an entry-point name"),
    ("no_such_module_xyz:IMPL", r"importing 'no_such_module_xyz' failed: ModuleNotFoundError"),
    ("implementations.numpy_mlp:", r"not an implementation source"),
    ("implementations.numpy_mlp:nothing_here", r"'implementations\.numpy_mlp' has no attribute 'nothing_here'"),
])
def test_bad_sources(source, problem):
    with pytest.raises(LoadError, match=rf"^implementation {source!r} load\(\): {problem}") as info:
        registry.load(source)
    assert "\n" not in str(info.value)


def test_describe_registered(entry_point_dir, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("BACKCHECK_IMPL", "examples/plugin_adapted.py:IMPL, tests/plugins/bad_import.py:IMPL")
    text = registry.describe_registered()
    blocks = {b.splitlines()[0]: b for b in text.split("\n\n")}
    assert blocks["builtin  [built-in]  name: numpy-builtin"].endswith("not checked (not declared): nothing")
    assert "entry-mlp  [entry point fake_entry_plugin:EntryMLP]  name: entry-point-mlp" in blocks
    third = blocks["examples/plugin_adapted.py:IMPL  [$BACKCHECK_IMPL]  name: third-party-mlp"]
    assert "losses: mse;" in third
    assert "activations: identity, relu, sigmoid, tanh\n" in third
    # one line per kind of thing left out, not one per combination
    assert "not checked (not declared):\n      activations leaky_relu, abs, generalized_relu, softplus, elu, maxout\n" \
        in third
    assert "\n      losses l1, logistic, perceptron, hinge, bce, softmax_ce\n" in third
    assert "\n      dtype float32\n" in third and "\n      per-layer intermediates\n" in third
    bad = blocks["tests/plugins/bad_import.py:IMPL  [$BACKCHECK_IMPL]"]
    assert "error: implementation 'tests/plugins/bad_import.py:IMPL' load(): importing" in bad
    assert "broken-entry  [entry point fake_entry_plugin]" in blocks  # listed with its error


def test_backcheck_list_command():
    env = {**os.environ, "BACKCHECK_IMPL": "examples/buggy_student.py:StudentMLP"}
    proc = subprocess.run([sys.executable, "-m", "backcheck.cli", "list"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "builtin  [built-in]  name: numpy-builtin" in proc.stdout
    assert "examples/buggy_student.py:StudentMLP  [$BACKCHECK_IMPL]  name: student-mlp" in proc.stdout
    assert "not checked (not declared):\n      activations leaky_relu, abs, generalized_relu, softplus, elu, maxout" \
        in proc.stdout


def test_pytest_impl_for_every_way_of_naming(entry_point_dir, tmp_path):
    """`pytest --impl X` (repeatable) and $BACKCHECK_IMPL, isolated, in a fresh process: each
    implementation's verdicts carry its name."""
    suite = str(ROOT / "tests" / "plugins" / "tiny_suite.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(entry_point_dir), str(ROOT)])}
    env.pop("BACKCHECK_IMPL", None)
    common = ["-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "--backcheck-no-step-curve", "-o", "addopts="]

    def run(args, cwd, extra_env=None):
        out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", suite, *common, f"--backcheck-json={out}", *args],
                              cwd=cwd, env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        return {v["implementation"] for v in json.loads(out.read_text())["verdicts"] if v["status"] == "passed"}

    names = run(["--impl=builtin", "--impl=implementations.numpy_mlp:NumpyMLP",
                 "--impl=examples/plugin_adapted.py:IMPL", "--impl=entry-mlp"], ROOT)
    assert names == {"numpy-builtin", "third-party-mlp", "entry-point-mlp"}
    # from the user's repository: module:attr without installing, and $BACKCHECK_IMPL
    assert run([], ROOT / "examples" / "user_repo", {"BACKCHECK_IMPL": "mypkg.backprop:MLP, builtin"}) \
        == {"mypkg-mlp", "numpy-builtin"}
