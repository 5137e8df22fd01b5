#!/usr/bin/env python3
"""Summarise the `codec` criterion bench: medians, ratios and throughputs as Markdown.

Usage (from the workspace root, after `cargo bench -p uwsgi-protocol --bench codec`):

    python3 protocol/benches/report.py [target/criterion]

Reads every `<bench>/new/benchmark.json` + `estimates.json` (the "median" point estimate,
in ns) and prints the tables used in docs/benchmarks.md.
"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
results = {}  # group -> function -> (median_ns, bytes)
for bench in root.glob("**/new/benchmark.json"):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    throughput = (meta.get("throughput") or {}).get("Bytes")
    results.setdefault(meta["group_id"], {})[meta["function_id"]] = (
        est["median"]["point_estimate"],
        throughput,
    )

if not results:
    sys.exit(f"no criterion results under {root}")


def ns(t):
    return f"{t / 1000:.2f} µs" if t >= 1000 else f"{t:.1f} ns"


def gbs(t, nbytes):
    return f"{nbytes / t:.2f} GB/s"  # bytes per ns == GB/s (10^9 bytes per second)


UWSGI = "uwsgi decode"
ONE_PASS = "uwsgi decode one-pass"
ONLY = "uwsgi decode only"
FLOOR = "floor walk (not the library)"
HTTP = "httparse parse"
SAME = "uwsgi decode, same fields as HTTP"

print("| vector | uwsgi decode | httparse parse | ratio httparse/uwsgi | bytes uwsgi / http "
      "| one-pass touch (ratio) | decode only (ratio) | floor walk | same fields as HTTP (ratio) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for group in sorted(g for g in results if g.startswith("decode/")):
    r = results[group]
    if UWSGI not in r or HTTP not in r:
        continue
    u, ub = r[UWSGI]
    h, hb = r[HTTP]

    def extra(name):
        if name not in r:
            return "–"
        t = r[name][0]
        return f"{ns(t)} ({h / t:.2f}x)"

    floor = ns(r[FLOOR][0]) if FLOOR in r else "–"
    print(f"| {group.split('/', 1)[1]} | {ns(u)} | {ns(h)} | **{h / u:.2f}x** | {ub} / {hb} "
          f"| {extra(ONE_PASS)} | {extra(ONLY)} | {floor} | {extra(SAME)} |")

for group in sorted(g for g in results if not g.startswith("decode/")):
    print()
    print(f"| {group} | median | throughput |")
    print("|---|---:|---:|")
    for function, (t, nbytes) in sorted(results[group].items()):
        print(f"| {function} | {ns(t)} | {gbs(t, nbytes) if nbytes else '–'} |")
