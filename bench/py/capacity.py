"""docs/capacity.md's generated sections, from the figures bench/capacity.sh measured.

    python3 bench/py/capacity.py CAPACITY.tsv DOC.md

CAPACITY.tsv rows (bench/capacity.sh): `request` rows (name, cache hit/miss/-, connections, per
second, p50 ms, p99 ms, service µs, PostgreSQL µs, -, non-2xx), `job` rows (kind, jobs per second,
worker µs, PostgreSQL µs, catalog-order µs applying its events, jobs unfinished) and `meta` rows
(key, value). The statements and round trips come from DOC.md's own tables, which the services'
tests keep true (`<!-- statements:…:begin -->`). The chart's per-replica CPU, HPA target and
maximum replicas are read from helm/storefront/values.yaml. Rewrites the blocks between
`<!-- generated:measured:begin/end -->` and `<!-- generated:model:begin/end -->`; the prose around
them is written by hand. Plain Python, nothing to install.
"""

import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The traffic mix the model prices, as shares of all requests: (share, request, cache hit ratio).
# Browse is 70 %: list pages 35 %, item pages 28 %, category lists 7 %; search 15 %; order 10 %:
# placing the order 5 %, paying it 2.5 %, looking at it 2.5 %; upload 5 %.
BROWSE_HITS = 0.9
SEARCH_HITS = 0.0
MIX = [
    (0.35, "GET /v1/items", BROWSE_HITS),
    (0.28, "GET /v1/items/{id}", BROWSE_HITS),
    (0.07, "GET /v1/categories", BROWSE_HITS),
    (0.15, "GET /v1/items?q=", SEARCH_HITS),
    (0.05, "POST /v1/orders", None),
    (0.025, "POST /v1/orders/{id}/payment", None),
    (0.025, "GET /v1/orders/{id}", None),
    (0.05, "POST /v1/items/{id}/images", None),
]
# The job each request of the mix causes: an order its confirmation e-mail, an upload its thumbnails.
JOBS = {"POST /v1/orders": "email.order_confirmation", "POST /v1/items/{id}/images": "image.thumbnail"}
# Events applied per job of each kind (docs/design.md §6): two job.status, and image.processed.
EVENTS = {
    "email.order_confirmation": ["event applied: `job.status` (two a job)"] * 2,
    "image.thumbnail": ["event applied: `job.status` (two a job)"] * 2 + ["event applied: `image.processed`"],
}
RATE = 1000  # requests per second the model is priced for
RTT_MS = 0.5  # an assumed round trip between a pod and PostgreSQL in a cluster
DB_MAX_CONNECTIONS = 10  # the pool per replica (README, Settings); the chart does not change it
PG_CORES = 8  # an assumed PostgreSQL primary, for where it runs out
# Round trips an order holds its items' row locks for: the five statements after the
# `SELECT … FOR UPDATE` and the COMMIT (usecases::orders::place; docs/capacity.md).
LOCKED_ROUND_TRIPS = 6


def read_tsv(path):
    requests, jobs, meta = {}, {}, {}
    for line in Path(path).read_text().splitlines()[1:]:
        cells = line.split("\t")
        if cells[0] == "meta":
            meta[cells[1]] = cells[2]
        elif cells[0] == "request":
            _, name, cache, conns, rps, p50, p99, cpu, pg, _events, bad = cells
            requests[(name, cache)] = dict(conns=conns, rps=float(rps), p50=p50, p99=p99,
                                           cpu=number(cpu), pg=number(pg), bad=bad)
        elif cells[0] == "job":
            _, name, _c, _n, rate, _p50, _p99, cpu, pg, events, left = cells
            jobs[name] = dict(rate=float(rate), cpu=number(cpu), pg=number(pg), events=number(events), left=left)
    return requests, jobs, meta


def number(cell):
    return float(cell) if cell not in ("", "-") else math.nan


def statements(doc):
    """{label: (statements, round trips)} from every `statements:…` table of the document."""
    counts = {}
    for block in re.findall(r"<!-- statements:[^ ]+:begin -->\n(.*?)<!-- statements:", doc, re.S):
        for line in block.splitlines()[2:]:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3:
                label = cells[0]
                if label.startswith("`") and label.endswith("`") and label.count("`") == 2:
                    label = label[1:-1]
                counts[label] = (int(cells[1]), int(cells[2]))
    return counts


def chart(service):
    """(CPU limit in cores, CPU request in cores, HPA target %, HPA min and max replicas) of a service."""
    text = (ROOT / "helm/storefront/values.yaml").read_text()
    section = text.split(f"\n  {service}:\n", 1)[1].split("\n\n", 1)[0]
    section = re.split(r"\n  [a-z-]+:\n", section, maxsplit=1)[0]

    def cores(kind):
        value = re.search(kind + r": \{cpu: \"?([0-9.]+)(m?)\"?", section)
        return float(value.group(1)) / (1000 if value.group(2) else 1)

    def whole(key):
        return int(re.search(key + r": (\d+)", section).group(1))

    return cores("limits"), cores("requests"), whole("targetCPU"), whole("minReplicas"), whole("maxReplicas")


def replicas(n):
    return f"{n} replica" + ("" if n == 1 else "s")


def fmt(x, digits=0):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}".replace(",", " ")


def measured(requests, jobs, meta, counts):
    out = [f"Run of {meta.get('date', '?')} at commit `{meta.get('commit', '?')}` on {meta.get('cores', '?')} cores "
           f"({meta.get('cpu', '?')}), {meta.get('items', '?')} items, wrk at {meta.get('connections', '?')} "
           f"connections for {meta.get('seconds', '?')} s per row; load average {meta.get('load_before', '?')} "
           f"before, {meta.get('load_after', '?')} after; {meta.get('run_seconds', '?')} s in all. "
           "The load generator, the service and PostgreSQL shared these cores: req/s is what this "
           "machine did, not what a replica does; the CPU columns, per request, are what the model prices.",
           "",
           "| request | cache | req/s | p99 ms | µs CPU service | µs CPU PostgreSQL | statements | round trips |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (name, cache), r in requests.items():
        # A variant of a request ("POST /v1/orders (the same two items)") runs its statements.
        s, t = (0, 0) if cache == "hit" else counts.get(name, counts.get(name.split(" (")[0], (None, None)))
        bad = f" ({r['bad']} not 2xx)" if r["bad"] not in ("0", "") else ""
        out.append(f"| `{name}`{bad} | {cache} | {fmt(r['rps'])} | {r['p99']} | {fmt(r['cpu'])} | {fmt(r['pg'])} "
                   f"| {fmt(s)} | {fmt(t)} |")
    out += ["", "| job | jobs/s | µs CPU worker | µs CPU catalog-order (its events) | µs CPU PostgreSQL "
                "| statements (events) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, j in jobs.items():
        events = sum(counts.get(e, (0, 0))[0] for e in EVENTS.get(name, []))
        left = f" ({j['left']} unfinished)" if j["left"] not in ("0", "") else ""
        out.append(f"| `{name}`{left} | {fmt(j['rate'])} | {fmt(j['cpu'])} | {fmt(j['events'])} | {fmt(j['pg'])} "
                   f"| {events} |")
    return "\n".join(out) + "\n"


def model(requests, jobs, counts):
    shop_limit, shop_request, shop_target, shop_min, shop_max = chart("catalog-order")
    worker_limit, _, _, _, worker_max = chart("worker")
    out = [f"Priced for {fmt(RATE)} requests per second; catalog reads hit the replica's cache "
           f"{fmt(BROWSE_HITS * 100)} % of the time when browsing, searches {fmt(SEARCH_HITS * 100)} %. Cores "
           "are CPU seconds per second; statements a second leave out the relay's (a few per pass).", "",
           "| request | share | req/s | cache hits | cores catalog-order | cores worker (its job) "
           "| cores PostgreSQL | statements/s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    total = dict(shop=0.0, worker=0.0, pg=0.0, statements=0.0, busy=0.0)
    for share, name, hits in MIX:
        rate = share * RATE
        miss = requests.get((name, "miss")) or requests.get((name, "-"))
        hit = requests.get((name, "hit"))
        h = hits if hits is not None and hit else 0.0
        shop = rate * (h * hit["cpu"] if hit else 0) + rate * (1 - h) * miss["cpu"]
        pg = rate * (h * hit["pg"] if hit else 0) + rate * (1 - h) * miss["pg"]
        s, t = counts.get(name, (0, 0))
        sql = rate * (1 - h) * s
        # Little's law: a connection is held for its round trips and the server's work.
        busy = rate * (1 - h) * (t * RTT_MS / 1000) + pg / 1e6
        worker = 0.0
        job = jobs.get(JOBS.get(name, ""))
        if job:
            worker = rate * job["cpu"]
            shop += rate * job["events"]
            pg += rate * job["pg"]
            events = [counts.get(e, (0, 0)) for e in EVENTS[JOBS[name]]]
            sql += rate * sum(e[0] for e in events)
            busy += rate * sum(e[1] for e in events) * RTT_MS / 1000
        total["shop"] += shop / 1e6
        total["worker"] += worker / 1e6
        total["pg"] += pg / 1e6
        total["statements"] += sql
        total["busy"] += busy
        out.append(f"| `{name}` | {fmt(share * 100, 1)} % | {fmt(rate)} | {fmt(h * 100)} % | {fmt(shop / 1e6, 2)} "
                   f"| {fmt(worker / 1e6, 2)} | {fmt(pg / 1e6, 2)} | {fmt(sql)} |")
    out.append(f"| **total** | 100 % | {fmt(RATE)} | | **{fmt(total['shop'], 2)}** | **{fmt(total['worker'], 2)}** "
               f"| **{fmt(total['pg'], 2)}** | **{fmt(total['statements'])}** |")
    flat_out = math.ceil(total["shop"] / shop_limit)
    hpa_pod = shop_request * shop_target / 100
    hpa = max(shop_min, math.ceil(total["shop"] / hpa_pod))
    workers = math.ceil(total["worker"] / worker_limit)
    orders = requests.get(("POST /v1/orders", "-"), {}).get("rps", math.nan)
    hot = requests.get(("POST /v1/orders (the same two items)", "-"), {}).get("rps", math.nan)
    order_rate = dict((n, s) for s, n, _ in MIX).get("POST /v1/orders", 0) * RATE
    pool = hpa * DB_MAX_CONNECTIONS
    # The request rate of this mix at which each part runs out of CPU: catalog-order and the worker
    # at their HPA maximum with every replica at its limit, PostgreSQL at PG_CORES.
    limits = sorted([
        (shop_max * shop_limit / total["shop"] * RATE,
         f"catalog-order, {shop_max} replicas (its HPA maximum) of {fmt(shop_limit, 2)} core"),
        (worker_max * worker_limit / total["worker"] * RATE if total["worker"] else math.inf,
         f"the worker, {worker_max} replicas (its HPA maximum) of {fmt(worker_limit, 2)} cores"),
        (PG_CORES / total["pg"] * RATE, f"PostgreSQL on a primary of {PG_CORES} cores"),
    ])
    out += ["",
            f"- **catalog-order: {fmt(total['shop'], 2)} cores per {fmt(RATE)} req/s**: {replicas(flat_out)} "
            f"at the chart's CPU limit of {fmt(shop_limit, 2)} core, running flat out. The HPA aims at "
            f"{shop_target} % of the {fmt(shop_request * 1000)}m CPU request ({fmt(hpa_pod * 1000)}m a pod), "
            f"so it runs **{hpa} replicas** for this load (at least {shop_min}).",
            f"- **worker: {fmt(total['worker'], 2)} cores** ({replicas(workers)} at its {fmt(worker_limit, 2)}-core "
            "limit).",
            f"- **PostgreSQL: {fmt(total['pg'], 2)} cores, {fmt(total['statements'])} statements a second.**",
            f"- **Connections:** {hpa} catalog-order replicas may open {pool} (`DB_MAX_CONNECTIONS` = "
            f"{DB_MAX_CONNECTIONS} each); on average about **{fmt(total['busy'], 1)}** are busy (Little's law, "
            f"{RTT_MS} ms a round trip, plus PostgreSQL's CPU time)"
            + (", so the pool is not what limits." if total["busy"] < pool / 2 else ": the pool is near its size."),
            f"- **Hot item:** orders that all take the same two items: **{fmt(hot)} orders/s** here, whatever the "
            f"replicas (two random items of 1 000: {fmt(orders)}/s). The mix places {fmt(order_rate)} orders/s per "
            f"{fmt(RATE)} req/s, spread over the catalog; a flash sale puts them on one row. With {RTT_MS} ms a "
            f"round trip, the {LOCKED_ROUND_TRIPS} round trips under the lock alone allow at most about "
            f"**{fmt(1000 / (LOCKED_ROUND_TRIPS * RTT_MS))} orders/s** of one item.",
            "- **As the traffic of this mix grows, CPU runs out first in** "
            + "; then ".join(f"{what} at about **{fmt(rate)} req/s**" for rate, what in limits) + ".",
            ]
    return "\n".join(out) + "\n"


def replace(doc, block, text):
    begin, end = f"<!-- generated:{block}:begin -->\n", f"<!-- generated:{block}:end -->"
    if begin not in doc or end not in doc:
        sys.exit(f"docs/capacity.md has no {begin.strip()} … {end}")
    head, rest = doc.split(begin, 1)
    return head + begin + text + end + rest.split(end, 1)[1]


def main():
    tsv, doc_path = sys.argv[1], Path(sys.argv[2])
    requests, jobs, meta = read_tsv(tsv)
    doc = doc_path.read_text()
    counts = statements(doc)
    doc = replace(doc, "measured", measured(requests, jobs, meta, counts))
    doc = replace(doc, "model", model(requests, jobs, counts))
    doc_path.write_text(doc)


if __name__ == "__main__":
    main()
