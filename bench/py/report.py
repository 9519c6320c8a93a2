"""bench/REPORT.md and its SVG plots from the rows bench/report.sh collected.

    python3 bench/py/report.py STARTUP.txt OUT_DIR RESULTS.tsv...

Each RESULTS.tsv is one run; its rows (bench/lib.sh, bench_tsv): scenario, connections, per
second, p50 ms, p99 ms, baseline per second. A ratio compares a service with its baseline of the
same run; each row of the table is the run with the median ratio, and the plots show each
point's median over the runs. STARTUP.txt: bench/startup.sh's table (and thumbnail.txt beside
it, from bench/thumbnail.sh, if there). Plain Python: the plots are SVG written here, so the
report needs nothing installed.
"""

import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# Each chart: its file, title, and the scenarios drawn (service solid, baseline dashed).
CHARTS = [
    ("list", "GET /v1/items: cache hits, misses, 304 — and their baselines",
     ["list, hot", "pgbench, hot list SQL", "list, cold", "pgbench, cold list SQL", "list, 304", "/health/live"]),
    ("orders", "POST /v1/orders and pgbench of its transaction",
     ["orders", "pgbench, order transaction"]),
]
# The goals of issue 17, as (scenario, its baseline scenario, least ratio).
GOALS = [
    ("list, hot", "pgbench, hot list SQL", 2.0),
    ("list, cold", "pgbench, cold list SQL", 0.4),
    ("list, 304", "/health/live", 0.8),
    ("orders", "pgbench, order transaction", 0.5),
]
# The most a scenario could reach on this machine, from the same run's figures: a cache hit is at
# best as fast as GET /health/live, which does nothing; a miss is at least that round trip and the
# database's, one after the other on each connection (rates at equal concurrency, so the latencies
# add: 1/live + 1/pgbench per request). None: no ceiling below the goal to report.
CEILINGS = {
    "list, hot": lambda live, base: live / base,
    "list, cold": lambda live, base: live / (live + base),
}
COLOURS = ["#1f77b4", "#1f77b4", "#d62728", "#d62728", "#2ca02c", "#7f7f7f"]


def read(path):
    rows = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        scenario, conns, rps, p50, p99, _base = line.split("\t")
        rows[scenario][int(conns)] = (float(rps), float(p50), float(p99))
    return rows


def nice_ticks(lo, hi, log_y):
    """Round values for the y axis: 1-2-5 steps, or powers of ten (and their halves) on a log axis."""
    if log_y:
        ticks, p = [], math.floor(math.log10(max(lo, 1e-3)))
        while 10 ** p <= hi:
            ticks += [t for t in (10 ** p, 2 * 10 ** p, 5 * 10 ** p) if lo <= t <= hi]
            p += 1
        return ticks or [lo, hi]
    raw = hi / 5
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    return [i * step for i in range(int(hi / step) + 1)]


def svg_chart(series, value, title, unit, log_y=False):
    """Lines of `value(point)` against connections (log2 axis); series: [(name, {c: point})]."""
    w, h, left, right, top, bottom = 760, 380, 70, 250, 40, 50
    xs = sorted({c for _, pts in series for c in pts})
    ys = [value(p) for _, pts in series for p in pts.values()]
    if not xs or not ys:
        return ""
    x_lo, x_hi = math.log2(xs[0]), math.log2(xs[-1]) or 1
    y_hi = max(ys) * 1.1
    y_lo = min(ys) / 1.5 if log_y else 0
    tf = (lambda v: math.log10(max(v, 1e-3))) if log_y else (lambda v: v)

    def px(c):
        span = (x_hi - x_lo) or 1
        return left + (math.log2(c) - x_lo) / span * (w - left - right)

    def py(v):
        return top + (1 - (tf(v) - tf(y_lo)) / ((tf(y_hi) - tf(y_lo)) or 1)) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">{title}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(left + w - right) / 2}" y="{h - 12}" text-anchor="middle">connections</text>',
           f'<text x="14" y="{top - 10}">{unit}</text>']
    for c in xs:
        out.append(f'<text x="{px(c):.1f}" y="{h - bottom + 16}" text-anchor="middle">{c}</text>')
    ticks = nice_ticks(y_lo, y_hi, log_y)
    for t in ticks:
        out.append(f'<line x1="{left - 4}" y1="{py(t):.1f}" x2="{w - right}" y2="{py(t):.1f}" stroke="#ddd"/>')
        label = f"{t:,.0f}" if t >= 10 else f"{t:g}"
        out.append(f'<text x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{label}</text>')
    for i, (name, pts) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6,4"' if name.startswith(("pgbench", "/health")) else ""
        path = " ".join(f"{px(c):.1f},{py(value(pts[c])):.1f}" for c in sorted(pts))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        ly = top + 10 + i * 18
        out.append(f'<line x1="{w - right + 12}" y1="{ly}" x2="{w - right + 36}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{w - right + 42}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ceiling_of(scenario, baseline, run, c):
    """CEILINGS[scenario] of one run at c connections, against its baseline, or None."""
    ceiling = CEILINGS.get(scenario)
    live, base = run.get("/health/live", {}).get(c), run.get(baseline, {}).get(c)
    if ceiling is None or not live or not base:
        return None
    return ceiling(live[0], base[0])


def median_points(runs):
    """{scenario: {c: point}} whose every figure is the median of that figure over the runs."""
    rows = defaultdict(dict)
    for scenario in {s for run in runs for s in run}:
        for c in {c for run in runs for c in run.get(scenario, {})}:
            points = [run[scenario][c] for run in runs if c in run.get(scenario, {})]
            rows[scenario][c] = tuple(statistics.median(p[i] for p in points) for i in range(3))
    return rows


def main():
    startup, out_dir, results = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    runs = [read(r) for r in results]
    rows = median_points(runs)
    (out_dir / "report").mkdir(parents=True, exist_ok=True)
    md = ["# Benchmark report", "",
          f"Written by `make bench-report` (bench/report.sh) from {len(runs)} run(s) on this machine (2 cores),",
          "each service measured against its baseline in the same run; each row below is the run",
          "whose ratio is the median, with every run's ratio beside it. catalog-order runs as the chart",
          "runs it: two replicas of one Tokio worker each (what a pod's 1-CPU limit gives), wrk's",
          "connections spread evenly over them ([capacity.md, Few connections](../docs/capacity.md#few-connections)",
          "has one process with two workers beside it). The README's Development table says what each",
          "benchmark does. Plots: the median of the runs at each point, service solid, baseline dashed;",
          "connections on a log scale, latencies too.", ""]
    md += ["## Ratios against the goals (issue 17)", "",
           "| measurement | connections | per second | baseline per second | ratio | every run | ceiling | goal | met |",
           "|---|---:|---:|---:|---:|---|---:|---:|---|"]
    for scenario, baseline, goal in GOALS:
        for c in sorted(rows.get(scenario, {})):
            # (ratio, rps, baseline rps, ceiling) of each run that measured both.
            measured = sorted((run[scenario][c][0] / run[baseline][c][0], run[scenario][c][0], run[baseline][c][0],
                               ceiling_of(scenario, baseline, run, c))
                              for run in runs
                              if c in run.get(scenario, {}) and run.get(baseline, {}).get(c, (0,))[0])
            if not measured:
                continue
            r, rps, base, ceiling = measured[(len(measured) - 1) // 2]
            every = ", ".join(f"{m[0]:.2f}" for m in measured)
            shown = "" if ceiling is None else f"{ceiling:.2f}"
            met = "yes" if r >= goal else "no" if ceiling is None or ceiling >= goal else "no (ceiling below the goal)"
            # A ratio just under the goal gets a third digit, so that "0.40 … no" cannot appear.
            ratio = f"{r:.3f}" if r < goal <= round(r, 2) else f"{r:.2f}"
            md.append(f"| {scenario} | {c} | {rps:,.0f} | {base:,.0f} ({baseline}) | {ratio} | {every} | {shown} | ≥ {goal} | {met} |")
    md += ["",
           "Ceiling: about the most the ratio could be on this machine in that run, whatever the service",
           "did (its figures are measured seconds apart, so noise can put a ratio a little above it).",
           "A cache hit can be no faster than `GET /health/live`, which does nothing (ceiling: its rate",
           "÷ pgbench's); a miss is at least that round trip and pgbench's, one after the other on each",
           "connection (ceiling: live ÷ (live + pgbench)). Where pgbench is far faster at 2 connections",
           "than at 1, the machine's idle CPUs are slow to wake, and every extra hop a request makes pays",
           "for that ([capacity.md, Few connections](../docs/capacity.md#few-connections)).", ""]
    for name, title, scenarios in CHARTS:
        series = [(s, rows[s]) for s in scenarios if s in rows]
        for suffix, value, unit, log_y, what in [
            ("throughput", lambda p: p[0], "per second", False, "throughput"),
            ("p50", lambda p: p[1], "p50 ms", True, "median latency"),
            ("p99", lambda p: p[2], "p99 ms", True, "99th percentile latency"),
        ]:
            svg = svg_chart(series, value, f"{title}: {what}", unit, log_y)
            if svg:
                file = f"report/{name}-{suffix}.svg"
                (out_dir / file).write_text(svg)
                md.append(f"![{title}: {what}]({file})")
                md.append("")
    md += ["## Start-up and idle memory (bench/startup.sh)", "", "```", Path(startup).read_text().rstrip(), "```", ""]
    thumbnails = Path(startup).with_name("thumbnail.txt")
    if thumbnails.exists():
        md += ["## Thumbnails against Pillow's draft() path (bench/thumbnail.sh)", "", "```",
               thumbnails.read_text().rstrip(), "```", ""]
    (out_dir / "REPORT.md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
