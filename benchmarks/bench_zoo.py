"""False alarms on the zoo (tests/zoo/: correct implementations in other people's idioms): per
member, every gradient check on --cases raw random cases drawn inside its declaration (the
property suite's own strategy, `cases_for`, derandomized), through the user path (the file
loaded by name, in a worker process). Prints per member the verdict counts by status, the
false alarms (failed + error + reference_mismatch; a member's known true positives counted
apart, tests/zoo/__init__.py), the not_checkable fraction per check and the wall time; and each
false alarm's summary line with what rebuilds it (spec, seed, scale, worst entry).

    python benchmarks/bench_zoo.py [--cases 1000] [--only jax_user,float32_numpy] [--scales large] [--json out.json]
    python benchmarks/bench_zoo.py --cli [--only ...]     `backcheck check --impl tests/zoo/x.py:IMPL`
                                                            per member: wall time, exit code, verdicts
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from zoo import MEMBERS, true_positive  # noqa: E402

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from implementations.registry import load  # noqa: E402
from properties.checks import GRADIENT_CHECKS, run_checks  # noqa: E402
from properties.strategies import cases_for  # noqa: E402
from reference.verdict import ERROR, FAILED, NOT_CHECKABLE, REFERENCE_MISMATCH, STATUSES  # noqa: E402

FALSE_ALARMS = (FAILED, ERROR, REFERENCE_MISMATCH)


def _members(only: str | None) -> list[str]:
    chosen = [m for m in MEMBERS if not only or m.split(".py")[0] in only.split(",") or m in only.split(",")]
    missing = [m for m in chosen if MEMBERS[m] and importlib.util.find_spec(MEMBERS[m]) is None]
    for m in missing:
        print(f"{m}: skipped ({MEMBERS[m]} is not installed)")
    return [m for m in chosen if m not in missing]


def _source(member: str) -> str:
    file, attr = member.split(":")
    return f"{ROOT / 'tests' / 'zoo' / file}:{attr}"


def run_member(member: str, n: int, scales=None) -> dict:
    """All checks on n cases: counts by (check, status), the false alarms and true positives.
    scales: the parameter scales drawn (strategies.SCALES; default all)."""
    src = _source(member)
    impl = load(src, isolate=True)
    counts, alarms, expected, drawn = Counter(), [], [], [0]

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=cases_for(impl.capabilities, **({"scales": scales} if scales else {})))
    def run(case):
        drawn[0] += 1
        for v in run_checks(impl, case, GRADIENT_CHECKS, impl_ref=src):
            # work the member does not declare is not a check that could not decide: apart
            declared = not (v.status == NOT_CHECKABLE and v.message.startswith("not declared"))
            counts[(v.check, v.status if declared else "not declared")] += 1
            if v.status in FALSE_ALARMS:
                (expected if true_positive(member, v) else alarms).append(_describe(v, case))

    t0 = time.perf_counter()
    try:
        run()
    finally:
        impl.close()
    return {"member": member, "name": impl.name, "cases": drawn[0], "seconds": time.perf_counter() - t0,
            "counts": counts, "false_alarms": alarms, "true_positives": expected}


def _describe(v, case) -> dict:
    return {"check": v.check, "status": v.status, "summary": v.summary(), "spec": case.spec.repr_code(),
            "case": case.label, "worst": str(v.worst) if v.worst is not None else None,
            "message": v.message, "reproducer": v.reproducer}


def print_member(r: dict) -> None:
    counts = r["counts"]
    by_status = Counter()
    for (_, status), k in counts.items():
        by_status[status] += k
    print(f"\n== {r['member']} ({r['name']}): {r['cases']} cases, {r['seconds']:.1f} s "
          f"({r['seconds'] / max(r['cases'], 1) * 1000:.0f} ms/case)")
    print("   verdicts: " + ", ".join(f"{s} {by_status[s]}" for s in (*STATUSES, "not declared") if by_status[s]))
    print(f"   false alarms: {len(r['false_alarms'])}"
          + (f"  (known true positives: {len(r['true_positives'])})" if r["true_positives"] else ""))
    fractions = []
    for check in GRADIENT_CHECKS:
        total = sum(k for (c, status), k in counts.items() if c == check and status != "not declared")
        if total:
            fractions.append(f"{check} {counts[(check, NOT_CHECKABLE)] / total:.1%}")
    undeclared = sorted({c for (c, status) in counts if status == "not declared"})
    print("   not_checkable (of the declared checks): " + ", ".join(fractions)
          + (f"; not declared: {', '.join(undeclared)}" if undeclared else ""))
    for a in r["false_alarms"]:
        print(f"   - {a['summary']}\n       {a['spec']}  [{a['case']}]")


def run_cli(member: str) -> dict:
    """The user's command on one member: wall time, exit code, verdict counts by status."""
    out = Path(tempfile.mkdtemp(prefix="bench-zoo-cli-"))
    cmd = [sys.executable, "-m", "backcheck.cli", "check", "--impl", f"tests/zoo/{member}", "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    counts = Counter()
    if (out / "results.json").exists():
        counts.update(v["status"] for v in json.loads((out / "results.json").read_text())["verdicts"])
    return {"member": member, "seconds": wall, "exit": proc.returncode, "counts": counts,
            "tail": proc.stdout.strip().splitlines()[-3:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1000, help="cases per member (default: %(default)s)")
    p.add_argument("--only", default=None, help="comma-separated members (file stem or file.py:attr)")
    p.add_argument("--cli", action="store_true", help="time `backcheck check --impl tests/zoo/x.py:IMPL` instead")
    p.add_argument("--scales", default=None, help="comma-separated parameter scales to draw, e.g. large "
                                                   "(default: all of properties.strategies.SCALES)")
    p.add_argument("--json", default=None, help="write every false alarm (with its reproducer) here")
    args = p.parse_args()
    members = _members(args.only)
    if args.cli:
        for m in members:
            r = run_cli(m)
            print(f"{m}: {r['seconds']:.0f} s, exit {r['exit']}, verdicts "
                  + ", ".join(f"{s} {r['counts'][s]}" for s in STATUSES if r["counts"][s]))
            if r["exit"] not in (0, 1):
                print("   " + "\n   ".join(r["tail"]))
        return
    results = []
    for m in members:
        r = run_member(m, args.cases, args.scales and tuple(args.scales.split(",")))
        print_member(r)
        results.append(r)
    total = sum(len(r["false_alarms"]) for r in results)
    print(f"\nfalse alarms: {total} on {sum(r['cases'] for r in results)} cases of {len(results)} members")
    if args.json:
        flat = [{**r, "counts": {f"{c}/{s}": k for (c, s), k in r["counts"].items()}} for r in results]
        Path(args.json).write_text(json.dumps(flat, indent=1))


if __name__ == "__main__":
    main()
