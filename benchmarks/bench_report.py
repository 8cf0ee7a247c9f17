"""10,000 recorded checks -> the HTML report: time and size (targets: < 2 s, < 5 MB).

What is timed is what `backcheck report results.json -o report.html` does: read and validate the
JSON, render, write. The baseline, in the same process, is reading the JSON and writing it back
(json.load + json.dump), so the ratio says what the report costs beyond handling the data at all.

    python benchmarks/bench_report.py [N]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from reports.demo import synthetic_verdicts
from reports.html import write_html
from reports.results import read_results, results_document

TIME_BUDGET, SIZE_BUDGET = 2.0, 5_000_000


def best_of(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int = 10_000) -> int:
    doc = results_document(synthetic_verdicts(n, seed=0), {"hypothesis_profile": "ci", "seed": "derandomized"})
    with tempfile.TemporaryDirectory() as tmp:
        src, html, copy = (os.path.join(tmp, f) for f in ("results.json", "report.html", "copy.json"))
        with open(src, "w") as f:
            json.dump(doc, f, indent=1)

        def baseline():
            with open(src) as f:
                d = json.load(f)
            with open(copy, "w") as f:
                json.dump(d, f, indent=1)
        t_base = best_of(baseline)
        t_report = best_of(lambda: write_html(read_results(src), html))
        size, json_size = os.path.getsize(html), os.path.getsize(src)
    print(f"{n:,} verdicts ({json_size / 1e6:.1f} MB of JSON) -> HTML report")
    print(f"  time : {t_report:.2f} s  (budget {TIME_BUDGET:.0f} s: {'ok' if t_report < TIME_BUDGET else 'OVER'})"
          f"   {t_report / t_base:.1f}x the JSON read+write baseline ({t_base:.2f} s)")
    print(f"  size : {size / 1e6:.2f} MB (budget {SIZE_BUDGET / 1e6:.0f} MB: {'ok' if size < SIZE_BUDGET else 'OVER'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
