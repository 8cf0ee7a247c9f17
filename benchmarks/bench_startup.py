"""First verdict in seconds (issue 12), in one run, every figure beside the machine's load:

- the main job (`backcheck check`) cold (an empty executable cache) and warm: wall time, the
  first result line's time, reference programs compiled, checked cases;
- one network (10-16-16-3 tanh, softmax cross-entropy, batch 32, float64, 499 parameters), all
  the gradient checks through `run_checks`, in a fresh process, cold and warm; the same network
  through `torch.autograd.gradcheck` (slow and fast mode, when torch is installed) and
  `jax.test_util.check_grads`, printed as ratios;
- a load error: its time to exit 2, and how many times its reason is printed.

    python benchmarks/bench_startup.py [--skip-main] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_NETWORK = r'''
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from implementations.numpy_mlp import builtin
from properties.checks import Case, run_checks
from reference import programs
from reference.spec import Layer, NetworkSpec, init_params, one_hot
imported = time.perf_counter()
spec = NetworkSpec(10, (Layer(16, "tanh"), Layer(16, "tanh"), Layer(3, "identity")), "softmax_ce", 0.0, "float64")
rng = np.random.default_rng(0)
case = Case.make(spec, init_params(spec, rng), rng.standard_normal((32, 10)), one_hot(rng.integers(0, 3, 32), 3))
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter()
    verdicts = run_checks(builtin, case)
    times.append(time.perf_counter() - t)
assert all(v.ok for v in verdicts), [v.summary() for v in verdicts if not v.ok]
programs.settle()   # the optimized builds behind the fast ones, stored for the next process
print(json.dumps({"import": imported - t0, "first": times[0], "warm": min(times[1:]) if len(times) > 1 else None,
                  "checks": len(verdicts), "params": sum(W.size + b.size for W, b in case.params),
                  "programs": dict(programs.stats)}))
'''

ANCHORS = r'''
import json, time
import numpy as np
out = {}
spec_sizes = [(10, 16), (16, 16), (16, 3)]
rng = np.random.default_rng(0)
Ws = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in spec_sizes]
bs = [rng.standard_normal(o) * 0.5 for _, o in spec_sizes]
X = rng.standard_normal((32, 10))
labels = rng.integers(0, 3, 32)
try:
    import torch
    def cost(*theta):
        h = torch.tensor(X)
        for j in range(3):
            h = h @ theta[2 * j].T + theta[2 * j + 1]
            if j < 2:
                h = torch.tanh(h)
        return torch.nn.functional.cross_entropy(h, torch.tensor(labels))
    theta = []
    for W, b in zip(Ws, bs):
        theta += [torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)]
    for mode, fast in (("torch_slow", False), ("torch_fast", True)):
        best = None
        for _ in range(3):
            t = time.perf_counter()
            assert torch.autograd.gradcheck(cost, tuple(theta), fast_mode=fast)
            best = min(best or 1e9, time.perf_counter() - t)
        out[mode] = best
except ImportError:
    pass
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from jax.test_util import check_grads
def jcost(theta):
    h = X
    for j in range(3):
        h = h @ theta[2 * j].T + theta[2 * j + 1]
        if j < 2:
            h = jnp.tanh(h)
    return jnp.mean(jax.nn.logsumexp(h, axis=1) - h[jnp.arange(32), labels])
theta = [jnp.asarray(a) for W, b in zip(Ws, bs) for a in (W, b)]
t = time.perf_counter()
check_grads(jcost, (theta,), order=1, modes=("rev",))
out["jax_check_grads_first"] = time.perf_counter() - t
t = time.perf_counter()
check_grads(jcost, (theta,), order=1, modes=("rev",))
out["jax_check_grads"] = time.perf_counter() - t
print(json.dumps(out))
'''


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _env(cache) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "BACKCHECK_IMPL"}
    env.update({"BACKCHECK_JAX_CACHE": str(cache), "CI": "true", "PYTHONPATH": str(ROOT)})
    return env


def main_job(cache: Path, out: Path) -> dict:
    """`backcheck check` in a fresh process (plain progress lines, timestamped as they come)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "backcheck.cli", "check", "--out", str(out)], cwd=ROOT,
                            env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, last = None, ""
    for line in proc.stdout:
        if first is None and " test 1/" in line:
            first = time.perf_counter() - t0
        if line.startswith("backcheck: ") and " tests, " in line:
            last = line.strip()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {"verdicts": []}
    verdicts = doc["verdicts"]
    checked = sum(v["status"] in ("passed", "failed") for v in verdicts)
    return {"wall": wall, "first": first, "rc": rc, "summary": last, "verdicts": len(verdicts), "checked": checked,
            "programs": len(list((cache / "executables").glob("*.bin")))}


def one_network(cache: Path, repeat: int) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", ONE_NETWORK, str(repeat)], cwd=ROOT, env=_env(cache),
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t0
    return out


def anchors() -> dict:
    proc = subprocess.run([sys.executable, "-c", ANCHORS], cwd=ROOT, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}


def load_error() -> dict:
    reason = "No module named 'backcheck_no_such_dependency'"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "properties", "-q", "-p", "no:cacheprovider",
                           "--impl=tests/plugins/bad_import.py:IMPL"], cwd=ROOT, env=_env("off"),
                          capture_output=True, text=True)
    return {"wall": time.perf_counter() - t0, "rc": proc.returncode, "said": (proc.stdout + proc.stderr).count(reason)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-main", action="store_true", help="leave out the two main-job runs (minutes)")
    ap.add_argument("--repeat", type=int, default=5, help="run_checks calls in the one-network process")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, {load()} at start")
    with tempfile.TemporaryDirectory(prefix="backcheck-bench-") as tmp:
        tmp = Path(tmp)
        e = load_error()
        print(f"load error: exit {e['rc']} in {e['wall']:.1f} s, its reason printed {e['said']} time(s)  [{load()}]"
              f"  (target: exit 2, once, < 5 s)")

        cold_net = one_network(tmp / "net-cache", args.repeat)
        warm_net = one_network(tmp / "net-cache", args.repeat)
        a = anchors()
        print(f"one network ({cold_net['params']} parameters, {cold_net['checks']} checks through run_checks):  [{load()}]")
        print(f"  cold (empty cache): first run_checks {cold_net['first']:.2f} s after {cold_net['import']:.2f} s of "
              f"imports, {cold_net['programs']['fast']} programs built fast and {cold_net['programs']['compiled']} "
              f"optimized (stored; the process waits for them: {cold_net['process']:.1f} s in all)"
              f"  (target <= 3 s)")
        print(f"  warm (cache filled): first run_checks {warm_net['first']:.3f} s "
              f"({warm_net['programs']['loaded']} programs loaded), later calls {warm_net['warm']:.3f} s"
              f"  (target <= 0.2 s)")
        for name, key in (("torch gradcheck, slow mode", "torch_slow"), ("torch gradcheck, fast mode", "torch_fast"),
                          ("jax check_grads (first call, compiles)", "jax_check_grads_first"),
                          ("jax check_grads", "jax_check_grads")):
            if key in a:
                print(f"  {name:40s} {a[key]:7.3f} s   backcheck warm / it: {warm_net['warm'] / a[key]:6.2f}x   "
                      f"backcheck cold / it: {cold_net['first'] / a[key]:6.1f}x")
        if "torch_slow" not in a:
            print("  (torch not installed: no gradcheck figures)")

        if not args.skip_main:
            cache = tmp / "main-cache"
            cold = main_job(cache, tmp / "cold")
            print(f"main job `backcheck check`, cold (empty cache): {cold['wall']:.1f} s, first result line at "
                  f"{cold['first'] or float('nan'):.1f} s, {cold['programs']} programs compiled, {cold['checked']} "
                  f"checked verdicts, exit {cold['rc']}  [{load()}]  (targets: <= 60 s, first line <= 10 s)")
            warm = main_job(cache, tmp / "warm")
            print(f"main job, warm: {warm['wall']:.1f} s, first result line at {warm['first'] or float('nan'):.1f} s, "
                  f"{warm['checked']} checked verdicts, exit {warm['rc']}  [{load()}]  (target: <= 15 s)")
            print(f"  cold / warm: {cold['wall'] / warm['wall']:.1f}x;  {cold['summary']}")


if __name__ == "__main__":
    main()
