"""The `backcheck` command.

    backcheck check [--impl SPEC ...]     run the harness suite (pytest + our plugin) on the
                                          implementation(s), print a table, write JSON + HTML
    backcheck report results.json -o report.html
    backcheck list                        registered implementations and their capabilities
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(args) -> int:
    import pytest

    from reports.results import read_results
    from reports.table import format_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "results.json", out / "report.html"
    if json_path.exists():
        json_path.unlink()  # never report a previous run's results as this one's
    suite = [str(ROOT / "properties")]
    argv = suite + ["-q", "-p", "no:cacheprovider", "--no-header", "-rN", "--tb=no",
                    f"--backcheck-json={json_path}", f"--backcheck-report={html_path}",
                    f"--hypothesis-profile={args.profile}"]
    for spec in args.impl or []:
        argv.append(f"--impl={spec}")
    if args.no_isolation:
        argv.append("--no-isolation")
    if args.impl_timeout:
        argv.append(f"--impl-timeout={args.impl_timeout}")
    if args.workers and args.workers != "0":
        argv += ["-n", args.workers]
    if args.k:
        argv += ["-k", args.k]
    print(f"backcheck: running {' '.join(suite)} (profile {args.profile}) ...", flush=True)
    code = pytest.main(argv)
    if not json_path.exists():
        print(f"backcheck: the suite wrote no results (pytest exit code {int(code)})", file=sys.stderr)
        return 2
    doc = read_results(json_path)
    print(format_table(doc["verdicts"], verbose=args.verbose))
    print(f"\nHTML report: {html_path}")  # again after the table, where the reader is (the plugin said it above)
    bad = [v for v in doc["verdicts"] if v["status"] in ("failed", "error", "reference_mismatch")]
    return 1 if bad or int(code) not in (0,) else 0


def _report(args) -> int:
    from reports.html import write_html
    from reports.results import read_results
    try:
        doc = read_results(args.results)
        write_html(doc, args.output)
    except (OSError, ValueError) as e:
        print(f"backcheck report: {e}", file=sys.stderr)
        return 2
    print(f"HTML report: {args.output}")
    return 0


def _list(args) -> int:
    from implementations.registry import describe_registered
    print(describe_registered())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="backcheck", description=(
        "Verify hand-written backpropagation against JAX autodiff and finite differences."))
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="check implementation(s) and write the JSON results and HTML report",
                       description="Runs the gradient, finite-difference, property, perceptron and training-rule "
                                   "checks on each implementation; exits 1 if any check fails or errors.")
    c.add_argument("--impl", action="append", metavar="SPEC",
                   help="'builtin' (default), module:attr or path/to/file.py:attr; repeatable; "
                        "also read from $BACKCHECK_IMPL")
    c.add_argument("--out", default="backcheck-report", help="folder for results.json and report.html "
                                                              "(default: %(default)s)")
    c.add_argument("--profile", default=os.environ.get("BACKCHECK_PROFILE", "ci"),
                   choices=["dev", "ci", "thorough"], help="Hypothesis profile (default: %(default)s)")
    c.add_argument("-n", "--workers", default="0", help="pytest-xdist workers (default: 0, serial)")
    c.add_argument("-k", default=None, help="only run checks matching this pytest -k expression")
    c.add_argument("--no-isolation", action="store_true", help="run plug-ins in-process (trusted code only)")
    c.add_argument("--impl-timeout", type=float, default=None, metavar="SECONDS",
                   help="per-call timeout for an isolated plug-in (default 30)")
    c.add_argument("-v", "--verbose", action="store_true", help="list every verdict, not only the summary")
    c.set_defaults(func=_check)
    r = sub.add_parser("report", help="regenerate the HTML report from a results JSON file")
    r.add_argument("results", help="results.json written by `backcheck check` or --backcheck-json")
    r.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: %(default)s)")
    r.set_defaults(func=_report)
    ls = sub.add_parser("list", help="show registered implementations and their capabilities")
    ls.set_defaults(func=_list)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
