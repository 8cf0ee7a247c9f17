"""The README's CI snippet, run: backcheck installed from its source, then examples/user_repo
with its `test` extra, then the snippet's pytest command, in a new virtual environment.

The venv is made with --system-site-packages (and without pip of its own: this machine's pip
runs in it), so jax, numpy, hypothesis and pytest come from this machine: the installs run with
--no-index and never reach an index, and backcheck is installed with --no-deps. What the venv
gets from the snippet is backcheck itself (a wheel built from a copy of this checkout) and the
user's package. A truly fresh environment (no system packages, dependencies from the index) was
checked by hand; the snippet's install lines are the same.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER_REPO = ROOT / "examples" / "user_repo"
SELECTION = "test_fixed_case and (tanhxmse or reluxmse)"  # two fixed cases: every check, a few seconds


def _block(readme: Path, heading: str, lang: str) -> str:
    text = readme.read_text()
    section = text[text.index(heading):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _snippet() -> list[list[str]]:
    sh = _block(ROOT / "README.md", "### In your own repository's CI", "sh")
    assert sh == _block(ROOT / "examples" / "README.md", "## In your own repository's CI", "sh"), \
        "README.md and examples/README.md must show the same CI step"
    return [shlex.split(line) for line in sh.splitlines() if line.strip() and not line.startswith("#")]


def _checkout_copy(dest: Path) -> Path:
    """The installable part of this checkout (what pyproject.toml packages, plus its metadata
    files): pip builds in the source tree, and this one is shared with other work."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    for pattern in meta["tool"]["setuptools"]["packages"]["find"]["include"]:
        if not pattern.endswith(".*"):
            shutil.copytree(ROOT / pattern.rstrip("*"), dest / pattern.rstrip("*"),
                            ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _requirement_names(pyproject: dict) -> set[str]:
    project = pyproject["project"]
    reqs = project.get("dependencies", []) + [r for rs in project.get("optional-dependencies", {}).values() for r in rs]
    return {re.split(r"[\s<>=!~\[;@]", r, maxsplit=1)[0].lower() for r in reqs}


def test_the_ci_snippet_installs_and_runs_in_a_new_venv(tmp_path):
    user_toml = tomllib.loads((USER_REPO / "pyproject.toml").read_text())
    # backcheck is on no index: a requirement naming it fails in a user's fresh environment
    assert "backcheck" not in _requirement_names(user_toml)
    readme_toml = tomllib.loads(_block(ROOT / "README.md", "### In your own repository's CI", "toml"))
    assert readme_toml["project"]["optional-dependencies"] == user_toml["project"]["optional-dependencies"]

    venv, repo = tmp_path / "venv", tmp_path / "user_repo"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    shutil.copytree(USER_REPO, repo, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env.update(BACKCHECK_SOURCE=str(_checkout_copy(tmp_path / "backcheck")), PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")

    ran = []
    for argv in _snippet():
        argv = [re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], a) for a in argv]  # as the shell would
        if argv[:2] == ["pip", "install"]:
            offline = ["--no-index", "--no-build-isolation", "-q"]
            offline += ["--no-deps"] if argv[2] == env["BACKCHECK_SOURCE"] else []
            cmd = [python, "-m", "pip", "install", *offline, *argv[2:]]
        else:
            assert argv[0] == "pytest", argv
            # one process (the machine's cores are shared; xdist is tested in test_collection), a few tests
            cmd = [python, "-m", "pytest", *argv[1:], "-n", "0", "-k", SELECTION, "-p", "no:cacheprovider"]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{shlex.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        ran.append((argv[0], proc))
    assert [r for r, _ in ran] == ["pip", "pip", "pytest"]

    # backcheck ran from the venv's copy, not from this checkout
    where = subprocess.run([python, "-c", "import properties, backcheck.plugin as p; print(properties.__file__, p.__file__)"],
                           cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(w).is_relative_to(venv) for w in where), where
    out = ran[-1][1].stdout
    closing = out.strip().splitlines()[-1]   # pytest's own summary (the progress lines say "0 failed")
    assert re.search(r"\b2 passed\b", closing) and "failed" not in closing, out[-3000:]
    results = repo / "backcheck-report" / "results.json"
    assert "backcheck: wrote " in out and "backcheck-report/results.json" in out, out[-3000:]
    doc = json.loads(results.read_text())
    assert doc["meta"]["implementations"] == ["mypkg.backprop:MLP"]
    statuses = {(v["implementation"], v["status"]) for v in doc["verdicts"]}
    assert ("mypkg-mlp", "passed") in statuses
    assert not {s for _, s in statuses} & {"failed", "error"}, statuses
    assert (repo / "backcheck-report" / "report.html").stat().st_size > 0
