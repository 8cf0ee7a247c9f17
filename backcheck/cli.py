"""The `backcheck` command.

    backcheck check [--impl SPEC ...]     run the harness suite (pytest + our plugin) on the
                                          implementation(s), print a table, write JSON + HTML
    backcheck check --network 784,128,10 --activation relu --loss softmax_ce [--params net.npz]
                                          every gradient check on that one network, same outputs
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
    if args.network or args.network_spec:
        return _check_network(args)
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
                    "--backcheck-summary=off", "-p", "no:benchmark",
                    # this process imported hypothesis before pytest could rewrite its asserts:
                    # harmless, and noise at the end of a user's run
                    "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for spec in args.impl or []:
        argv.append(f"--impl={spec}")
    if args.no_isolation:
        argv.append("--no-isolation")
    if args.impl_timeout:
        argv.append(f"--impl-timeout={args.impl_timeout}")
    workers = args.workers
    if workers == "auto":   # xdist workers when at least two cores are idle, else serial
        from backcheck.plugin import default_workers
        workers = str(default_workers())
    if workers and workers != "0":
        argv += ["-n", workers]
    if args.k:
        argv += ["-k", args.k]
    # the profile by environment, not --hypothesis-profile: with that option, Hypothesis's plugin
    # imports Hypothesis in the xdist controller too, 0.5 s before any worker starts
    os.environ["BACKCHECK_PROFILE"] = args.profile
    print(f"backcheck: running {' '.join(suite)} (profile {args.profile}) ...", flush=True)
    code = pytest.main(argv)
    if not json_path.exists():
        print(f"backcheck: the suite wrote no results (pytest exit code {int(code)})", file=sys.stderr)
        return 2
    doc = read_results(json_path)
    print(format_table(doc, verbose=args.verbose))
    print(f"\nHTML report: {html_path}")  # again after the table, where the reader is (the plugin said it above)
    bad = [v for v in doc["verdicts"] if v["status"] in ("failed", "error", "reference_mismatch")]
    return 2 if int(code) == 2 else (1 if bad or int(code) != 0 else 0)   # 2: an implementation did not load


def _check_network(args) -> int:
    """`check --network`: every gradient check on that one architecture, run directly (pure
    functions -> Verdicts -> the same results.json and report.html), not through pytest."""
    import time

    from implementations.errors import PluginError
    from implementations.registry import BUILTIN, load
    from properties import network_input, scale_checks
    from reference.spec import SpecError
    from reference.verdict import NOT_CHECKABLE, Verdict
    from reports.results import run_meta, write_outputs
    from reports.table import format_table

    t0 = time.time()
    try:
        if args.network and args.network_spec:
            raise SpecError("--network and --network-spec: give one of them")
        if not 0 < args.sample_fraction <= 1:
            raise SpecError(f"--sample-fraction: must be in (0, 1], got {args.sample_fraction:g}")
        if args.directions < 1:
            raise SpecError(f"--directions: must be at least 1, got {args.directions}")
        spec = (network_input.spec_from_file(args.network_spec) if args.network_spec else
                network_input.spec_from_widths(args.network, args.activation, args.output_activation, args.loss,
                                               args.l2, args.dtype))
        case = network_input.case_from(spec, args.params, args.batch, args.seed,
                                       network_input.command_line(args.argv))
    except SpecError as e:
        print(f"backcheck check: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    json_path, html_path = out / "results.json", out / "report.html"
    if json_path.exists():
        json_path.unlink()  # never report a previous run's results as this one's
    sources = args.impl or [s.strip() for s in os.environ.get("BACKCHECK_IMPL", "").split(",") if s.strip()] or ["builtin"]
    checks = [c for c in scale_checks.MODES[args.fd] if not args.k or args.k in c]
    print(f"backcheck: {case.describe()}, {spec.n_params:,} parameters: {', '.join(checks)} ...", flush=True)
    verdicts = []
    for source in sources:
        try:
            impl = load(source, isolate=not (args.no_isolation or source in BUILTIN), timeout=args.impl_timeout)
        except PluginError as e:
            verdicts.append(e.verdict("load", spec))
            continue
        reason = impl.capabilities.supports(spec)
        if reason:   # left out, never passed: listed once in the report's "not checked"
            verdicts.append(Verdict("declared", NOT_CHECKABLE, implementation=impl.name, spec=spec.to_dict(),
                                    case=case.describe(), message=f"not declared: {reason}"))
        else:
            verdicts += scale_checks.run_checks(impl, case, checks, source, args.sample_fraction, args.directions)
        if hasattr(impl, "close"):
            impl.close()
    meta = run_meta(sources, time.time() - t0, step_curve=False, seed=f"--seed {args.seed}")
    meta.update(hypothesis_profile=None, network=spec.describe(), fd_mode=args.fd)
    doc = write_outputs([v.to_json() for v in verdicts], json_path, html_path, meta)
    print(format_table(doc, verbose=args.verbose))
    print(f"\nresults: {json_path}\nHTML report: {html_path}")
    bad = [v for v in verdicts if v.status in ("failed", "error", "reference_mismatch")]
    return 1 if bad else 0


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


_FD_MODES = {"full": "every entry by central, Richardson and the slides' differences, plus sampled and directional",
             "sampled": "a stratified sample of every layer's W and b, plus directional",
             "directional": "random directions only"}


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
    c.add_argument("-n", "--workers", default="auto",
                   help="pytest-xdist workers; auto (default): one per idle core up to 4 when at least two are "
                        "idle (busy cores measured over 0.2 s, /proc/stat), else 0, serial. On 2 idle cores, 2 "
                        "workers take the warm main job from ~13-17 s to ~11-13 s")
    c.add_argument("-k", default=None, help="only run checks matching this pytest -k expression")
    c.add_argument("--no-isolation", action="store_true", help="run plug-ins in-process (trusted code only)")
    c.add_argument("--impl-timeout", type=float, default=None, metavar="SECONDS",
                   help="per-call timeout for an isolated plug-in (default 30)")
    c.add_argument("-v", "--verbose", action="store_true", help="list every verdict, not only the summary")
    n = c.add_argument_group(
        "one real-size network", "Instead of the property suite, run every gradient check on one architecture, "
        "with the reference at scale (exact shapes, structured finite differences): e.g. "
        "--network 784,128,10 --activation relu --loss softmax_ce. -k selects checks by name.")
    n.add_argument("--network", metavar="N_IN,WIDTH,...,N_OUT", help="the layer widths, input first")
    n.add_argument("--network-spec", metavar="FILE.json", help="the network as NetworkSpec JSON (n_in, layers "
                                                                 "[{width, activation, alpha, pieces}], loss, l2, dtype)")
    n.add_argument("--activation", default="relu", help="hidden layers' activation (default: %(default)s)")
    n.add_argument("--output-activation", default="identity", help="output layer's activation (default: %(default)s)")
    n.add_argument("--loss", default="mse", help="loss (default: %(default)s)")
    n.add_argument("--l2", type=float, default=0.0, help="l2 regularization (default: %(default)s)")
    n.add_argument("--dtype", default="float64", help="dtype the implementation computes in (default: %(default)s)")
    n.add_argument("--params", metavar="FILE.npz", help="W1, b1, W2, b2, ... and/or X, Y (Y may be class labels); "
                                                        "what it leaves out is drawn from --seed")
    n.add_argument("--batch", type=int, default=32, help="samples in a drawn batch (default: %(default)s)")
    n.add_argument("--seed", type=int, default=0, help="for drawn parameters, batch, directions and samples")
    n.add_argument("--fd", choices=sorted(_FD_MODES), default="full",
                   help="finite differences: " + "; ".join(f"{k}: {v}" for k, v in _FD_MODES.items()))
    n.add_argument("--sample-fraction", type=float, default=0.1, help="sampled_fd: share of every layer's W and b "
                                                                        "(default: %(default)s)")
    n.add_argument("--directions", type=int, default=8, help="directional: random directions (default: %(default)s)")
    c.set_defaults(func=_check)
    r = sub.add_parser("report", help="regenerate the HTML report from a results JSON file")
    r.add_argument("results", help="results.json written by `backcheck check` or --backcheck-json")
    r.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: %(default)s)")
    r.set_defaults(func=_report)
    ls = sub.add_parser("list", help="show registered implementations and their capabilities")
    ls.set_defaults(func=_list)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv   # the network mode's reproducers repeat the command
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
