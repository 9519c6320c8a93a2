"""A bench/load run as one Markdown table, a row per endpoint: requests, failures, req/s, p50,
p90, p99 and max latency (ms); the settings above it, failures by cause and errors of the
locustfile below. bench/load.sh runs it; standard library only.

    python3 bench/load/table.py PREFIX_summary.json

The summary is what bench/load/locustfile.py writes when the run stops (its docstring says how
the figures are taken)."""

from __future__ import annotations

import json
import sys

COLUMNS = ("requests", "failures", "req/s", "p50", "p90", "p99", "max")


def settings_line(s: dict) -> str:
    mix = ", ".join(f"{flow} {weight}" for flow, weight in s["mix"].items())
    host = s["host"] + (f" (Host {s['host_header']})" if s.get("host_header") else "")
    low, high = s["think_s"]
    return (f"{s['users']} users for {s['run_time_s']} s, thinking {low:g}–{high:g} s between flows; "
            f"flows weighted {mix}; {s['customers']} customers, "
            f"{'an admin uploading' if s['admin'] else 'no admin (no uploads)'}; {host}.")


def cell(column: str, value) -> str:
    if value is None:
        return "–"  # no answer, no percentile
    return f"{value:,.1f}" if column == "req/s" else f"{value:,.0f}"


def markdown(summary: dict) -> str:
    lines = [settings_line(summary["settings"]), "",
             "| endpoint | requests | failures | req/s | p50 ms | p90 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        name = "**all**" if r["endpoint"] == "all" else f"`{r['endpoint']}`"
        lines.append(f"| {name} | " + " | ".join(cell(c, r[c]) for c in COLUMNS) + " |")
    if summary["failures"]:
        lines += ["", "Failures: " + "; ".join(f"{f['request']}: {f['error']} ×{f['count']}" for f in summary["failures"])]
    if summary["exceptions"]:
        lines += ["", "Errors in the locustfile: " + "; ".join(f"{e['error']} ×{e['count']}" for e in summary["exceptions"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: table.py PREFIX_summary.json")
    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)), end="")
