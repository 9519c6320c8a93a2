"""The shop's traffic mix for Locust, through the ingress: what the rehearsal drives for 20 s
(docs/rehearsal.md, "The load mix") and what the capacity model cites (bench/report/load-mix.md).
`bash bench/load.sh URL [USERS] [DURATION]` runs it headless and prints a table per endpoint;
by hand:

    bash scripts/tools.sh locust
    LOAD_ADMIN_EMAIL=… LOAD_ADMIN_PASSWORD=… "$(bash scripts/tools.sh path locust)" \\
      -f bench/load/locustfile.py --headless -u 20 -r 20 -t 20s \\
      --host https://shop.example.com --csv /tmp/load/load

The mix. Each run of a user's task is one flow, drawn by weight (LOAD_MIX, default
browse=60,search=28,order=10,upload=2: weights of flows, not of requests); between two flows a
user thinks LOAD_THINK seconds (default 0.25-0.75, uniform).

  browse  GET /v1/items?category={slug}&sort={sort}  a category's first page, sorted by price,
                                                     -price, name or -created_at
          GET /v1/items/{id}                         an item of that page
          GET /v1/categories
  search  GET /v1/items?q={words}                    one or two words of the catalog's names and
                                                     descriptions, the last one at times cut short
                                                     (as typed)
  order   POST /v1/orders                            a signed-in customer, 1-2 items of quantity 1,
                                                     a new Idempotency-Key
          GET /v1/orders/{id}                        the order read back
  upload  POST /v1/items/{id}/images                 the admin, photo.jpg (480x360, 26 KB), a new
                                                     Idempotency-Key

Requests are named by route template, so the statistics have one row per endpoint.

Outcomes. Each request has the answers the shop gives it by design: 200 (the order 201, the
upload 202) and, for POST /v1/orders, 409 (not enough stock), which counts as a success like any
answer. Anything else is a failure: a 5xx, no answer (connection error, time-out), and also an
unexpected 4xx — a 429 means the mix outran a rate limit, a 401 an expired token: either way the
figures no longer describe the mix.

Set-up, before the clock starts and outside the statistics: the catalog is read (the first 100
categories and items); a catalog with no item is given a category and 20 items when there is an
admin; LOAD_CUSTOMERS customers register and sign in; the admin signs in. Two rate limits shape
a run from one address:
- auth's budget per client address (RATE_LIMIT_AUTH_*; burst 10 by default) counts every
  register and sign-in: a 429 in the set-up is waited out (Retry-After), so more customers only
  make the set-up slower;
- catalog-order's write budget per user (RATE_LIMIT_WRITE_*, 120 a minute, burst 30) bounds one
  customer's orders and the admin's uploads: keep each under 2 a second (users x flows a second
  x the flow's share, divided by LOAD_CUSTOMERS for orders).
Access tokens are refreshed a minute before they expire, so a run may outlast ACCESS_TOKEN_TTL.

Settings (environment):
  LOAD_MIX                                 flow weights, name=weight[,...]; 0 leaves a flow out
  LOAD_THINK                               seconds a user waits between flows, MIN-MAX
  LOAD_CUSTOMERS                           customers sharing the order flow (default 4)
  LOAD_ADMIN_EMAIL, LOAD_ADMIN_PASSWORD    an admin (`auth create-admin`); without, no uploads
  LOAD_CA_FILE                             the CA of the ingress's certificate (default: the system's)
  LOAD_HOST_HEADER                         the Host to ask for when --host is an address
With --csv PREFIX, when the run stops, its figures per endpoint (Locust's own, final: its CSV
files lag by up to a second), its failures and errors and the settings in force are written to
PREFIX_summary.json, which bench/load/table.py turns into the table.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import ssl
import sys
import threading
import time
import uuid
from urllib.parse import quote, urlsplit

from locust import FastHttpUser, between, events, task
from locust.runners import MasterRunner, WorkerRunner

FLOWS = ("browse", "search", "order", "upload")
DEFAULT_MIX = "browse=60,search=28,order=10,upload=2"
DEFAULT_THINK = "0.25-0.75"
SORTS = ("price", "-price", "name", "-created_at")
PHOTO = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "photo.jpg"), "rb").read()
BOUNDARY = "storefront-load-" + uuid.uuid4().hex
UPLOAD_BODY = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
    "Content-Type: image/jpeg\r\n\r\n"
).encode() + PHOTO + f"\r\n--{BOUNDARY}--\r\n".encode()


class SetupError(Exception):
    """The shop could not be prepared for the run; the message says which call failed."""


class Direct:
    """Plain HTTPS calls for the set-up, outside Locust's statistics, with the same address, CA
    and Host as the users."""

    def __init__(self, base: str, host_header: str | None, ca_file: str | None):
        url = urlsplit(base)
        self.tls = url.scheme == "https"
        self.addr = (url.hostname, url.port or (443 if self.tls else 80))
        self.host = host_header or url.netloc
        self.ctx = ssl_context(ca_file) if self.tls else None

    def call(self, method: str, path: str, body=None, token: str | None = None, want: int = 200,
             patience: float = 120):
        """The answer's JSON; a 429 is waited out (Retry-After) for up to `patience` seconds."""
        headers = {"Host": self.host, "Accept": "application/json", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + patience
        while True:
            if self.tls:
                conn = http.client.HTTPSConnection(*self.addr, context=self.ctx, timeout=30)
            else:
                conn = http.client.HTTPConnection(*self.addr, timeout=30)
            try:
                conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
                answer = conn.getresponse()
                status, data, retry = answer.status, answer.read(), answer.getheader("Retry-After", "1")
            except (OSError, http.client.HTTPException) as e:
                raise SetupError(f"{method} {path}: no answer ({e!r})") from e
            finally:
                conn.close()
            if status == 429 and time.monotonic() < deadline:
                time.sleep(min(float(retry), 10.0))
                continue
            if status != want:
                raise SetupError(f"{method} {path} → {status} (expected {want}): {data[:300]!r}")
            return json.loads(data) if data else None


class Account:
    """A signed-in user whose access token is refreshed shortly before it expires. Users share
    an account, so one lock guards the rotation: two refreshes with one refresh token would
    revoke the session (the reuse rule)."""

    def __init__(self, direct: Direct, email: str, password: str):
        self.direct = direct
        self.lock = threading.Lock()  # gevent's, once Locust has patched the standard library
        self._use(direct.call("POST", "/v1/auth/login", {"email": email, "password": password}))

    def _use(self, pair: dict) -> None:
        self.access, self.refresh = pair["access_token"], pair["refresh_token"]
        self.renew_at = time.monotonic() + max(int(pair["expires_in"]) - 60, 30)

    def token(self) -> str:
        if time.monotonic() >= self.renew_at:
            with self.lock:
                if time.monotonic() >= self.renew_at:
                    self._use(self.direct.call("POST", "/v1/auth/refresh", {"refresh_token": self.refresh}))
        return self.access


class Shop:
    """What the users share: the catalog they pick from, the customers, the admin, the mix."""

    def __init__(self):
        self.weights: dict[str, int] = {}
        self.item_ids: list[str] = []
        self.slugs: list[str] = []
        self.words: list[str] = []
        self.customers: list[Account] = []
        self.admin: Account | None = None
        self._next = 0

    def prepare(self, direct: Direct, mix: dict[str, int], customers: int, admin: tuple[str, str] | None) -> None:
        if admin:
            self.admin = Account(direct, *admin)
        categories = direct.call("GET", "/v1/categories?limit=100")["items"]
        items = direct.call("GET", "/v1/items?limit=100")["items"]
        if not items and self.admin:
            categories, items = seed(direct, self.admin.token())
        if not items:
            raise SetupError("the catalog has no active item: seed it (catalog-order seed-demo) or give an admin")
        self.item_ids = [i["id"] for i in items if i["stock"] > 0] or [i["id"] for i in items]
        used = {i["category_id"] for i in items}
        self.slugs = [c["slug"] for c in categories if c["id"] in used] or [c["slug"] for c in categories]
        text = " ".join(f"{i['name']} {i.get('description') or ''}" for i in items).lower()
        self.words = sorted({w for w in re.findall(r"[^\W\d_]{3,}", text)}) or ["shop"]
        run = uuid.uuid4().hex[:8]
        for n in range(customers if mix["order"] else 0):
            email, password = f"load-{run}-{n}@example.com", secrets.token_urlsafe(18)
            direct.call("POST", "/v1/auth/register", {"email": email, "password": password}, want=201)
            self.customers.append(Account(direct, email, password))
        self.weights = {
            flow: weight for flow, weight in mix.items()
            if weight > 0 and (flow != "order" or self.customers) and (flow != "upload" or self.admin)
        }
        if not self.weights:
            raise SetupError(f"no flow left to run (LOAD_MIX {mix}, {customers} customers, admin {bool(admin)})")

    def next_customer(self) -> Account | None:
        if not self.customers:
            return None
        self._next += 1
        return self.customers[self._next % len(self.customers)]


SHOP = Shop()
# The settings in force, for the summary.
SETTINGS: dict = {}


def seed(direct: Direct, token: str) -> tuple[list[dict], list[dict]]:
    """A category and 20 items, for a catalog that has none."""
    slug = f"load-{uuid.uuid4().hex[:6]}"
    category = direct.call("POST", "/v1/categories", {"name": "Kitchen", "slug": slug}, token=token, want=201)
    kinds, looks = ("mug", "teapot", "bowl", "plate", "jug"), ("stoneware", "enamel", "glazed", "speckled")
    items = [
        direct.call("POST", "/v1/items", {
            "category_id": category["id"], "sku": f"LOAD-{uuid.uuid4().hex[:8].upper()}",
            "name": f"{looks[n % 4].capitalize()} {kinds[n % 5]}",
            "description": f"A {looks[(n + 1) % 4]} {kinds[n % 5]} made for the load test",
            "price_cents": 800 + 150 * n, "currency": "EUR", "stock": 1_000_000,
        }, token=token, want=201)
        for n in range(20)
    ]
    return [category], items


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def parse_mix(text: str) -> dict[str, int]:
    mix = dict.fromkeys(FLOWS, 0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name.strip() not in mix or not weight.strip().isdigit():
            raise SetupError(f"LOAD_MIX: {part!r} is not FLOW=WEIGHT with FLOW one of {', '.join(FLOWS)}")
        mix[name.strip()] = int(weight)
    return mix


def parse_think(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        think = float(low), float(high or low)
    except ValueError:
        raise SetupError(f"LOAD_THINK: {text!r} is not MIN-MAX in seconds") from None
    if not 0 <= think[0] <= think[1]:
        raise SetupError(f"LOAD_THINK: {text!r} is not MIN-MAX in seconds")
    return think


def failure(answer) -> str:
    """How a failure is grouped in Locust's failure statistics (no URL: ids would split it)."""
    if not answer.status_code:
        return f"no answer: {type(answer.error).__name__}"
    return f"HTTP {answer.status_code}"


class Shopper(FastHttpUser):
    # Class attributes set by the `init` listener below, before any user exists.
    insecure = False
    network_timeout = 30.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.customer = SHOP.next_customer()

    @task
    def one_flow(self) -> None:
        flow = random.choices(list(SHOP.weights), weights=list(SHOP.weights.values()))[0]
        getattr(self, flow)()

    def call(self, method: str, name: str, path: str, expect: tuple[int, ...] = (200,), **kw):
        with self.client.request(method, path, name=name, catch_response=True, **kw) as answer:
            if answer.status_code in expect:
                answer.success()
            else:
                answer.failure(failure(answer))
        return answer

    def browse(self) -> None:
        slug, sort = random.choice(SHOP.slugs), random.choice(SORTS)
        page = self.call("GET", "/v1/items?category={slug}&sort={sort}",
                         f"/v1/items?category={quote(slug)}&sort={sort}&limit=20")
        shown = [i["id"] for i in page.json()["items"]] if page.status_code == 200 else []
        self.call("GET", "/v1/items/{id}", f"/v1/items/{random.choice(shown or SHOP.item_ids)}")
        self.call("GET", "/v1/categories", "/v1/categories")

    def search(self) -> None:
        words = random.sample(SHOP.words, k=min(len(SHOP.words), random.choice((1, 1, 2))))
        if len(words[-1]) > 3 and random.random() < 0.3:
            words[-1] = words[-1][: random.randint(3, len(words[-1]) - 1)]
        self.call("GET", "/v1/items?q={words}", f"/v1/items?q={quote(' '.join(words))}")

    def order(self) -> None:
        picked = random.sample(SHOP.item_ids, k=min(len(SHOP.item_ids), random.choice((1, 2))))
        auth = {"Authorization": f"Bearer {self.customer.token()}"}
        placed = self.call("POST", "/v1/orders", "/v1/orders", expect=(201, 409),
                           json={"lines": [{"item_id": i, "quantity": 1} for i in picked]},
                           headers={**auth, "Idempotency-Key": str(uuid.uuid4())})
        if placed.status_code == 201:
            self.call("GET", "/v1/orders/{id}", f"/v1/orders/{placed.json()['id']}", headers=auth)

    def upload(self) -> None:
        item = random.choice(SHOP.item_ids)
        self.call("POST", "/v1/items/{id}/images", f"/v1/items/{item}/images", expect=(202,), data=UPLOAD_BODY,
                  headers={"Authorization": f"Bearer {SHOP.admin.token()}", "Idempotency-Key": str(uuid.uuid4()),
                           "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


@events.init.add_listener
def prepare(environment, **_kwargs) -> None:
    """Reads the settings and prepares the shop before the clock starts (Locust's `init` event
    comes before the run time is counted and before the statistics begin)."""
    if isinstance(environment.runner, MasterRunner):
        return  # a distributed run's workers each prepare their own
    env = os.environ
    try:
        if not environment.host:
            raise SetupError("--host is needed (the ingress's URL)")
        mix = parse_mix(env.get("LOAD_MIX", DEFAULT_MIX))
        think = parse_think(env.get("LOAD_THINK", DEFAULT_THINK))
        customers = int(env.get("LOAD_CUSTOMERS", "4"))
        admin = (env["LOAD_ADMIN_EMAIL"], env["LOAD_ADMIN_PASSWORD"]) if env.get("LOAD_ADMIN_EMAIL") else None
        host_header, ca_file = env.get("LOAD_HOST_HEADER"), env.get("LOAD_CA_FILE")
        SHOP.prepare(Direct(environment.host, host_header, ca_file), mix, customers, admin)
    except (SetupError, ValueError, KeyError) as e:
        sys.exit(f"load: set-up failed: {e}")
    Shopper.wait_time = between(*think)
    # geventhttpclient calls it with `cafile=None`: the CA is ours either way.
    Shopper.ssl_context_factory = staticmethod(lambda **_: ssl_context(ca_file))
    if host_header:
        Shopper.default_headers = {"Host": host_header}
    options = environment.parsed_options
    SETTINGS.update({
        "host": environment.host, "host_header": host_header, "users": options and options.num_users,
        "run_time_s": options and options.run_time, "think_s": think, "mix": SHOP.weights,
        "customers": len(SHOP.customers), "admin": SHOP.admin is not None, "catalog_sample": len(SHOP.item_ids),
    })


@events.test_stop.add_listener
def summarize(environment, **_kwargs) -> None:
    """PREFIX_summary.json, once every user has stopped (a request still on its way then is not
    counted). Percentiles and max are Locust's: response times kept rounded (to 1 ms below
    100 ms, 10 ms below 1 s, 100 ms above); req/s is over the whole run."""
    options = environment.parsed_options
    if isinstance(environment.runner, WorkerRunner) or not (options and options.csv_prefix):
        return
    stats = environment.runner.stats

    def row(endpoint: str, entry) -> dict:
        answered = entry.num_requests > 0
        return {
            "endpoint": endpoint, "requests": entry.num_requests, "failures": entry.num_failures,
            "req/s": round(entry.total_rps, 2),
            **{p: entry.get_response_time_percentile(q) if answered else None
               for p, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
        }

    rows = [row(f"{e.method} {e.name}", e) for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))]
    with open(f"{options.csv_prefix}_summary.json", "w") as f:
        json.dump({
            "settings": SETTINGS,
            "rows": rows + [row("all", stats.total)],
            # The locustfile marks every failure itself, with the message failure() gives.
            "failures": [{"request": f"{e.method} {e.name}", "error": str(e.error), "count": e.occurrences}
                         for e in stats.errors.values()],
            "exceptions": [{"error": e["msg"], "count": e["count"]} for e in environment.runner.exceptions.values()],
        }, f, indent=1)
