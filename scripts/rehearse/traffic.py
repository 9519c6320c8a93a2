"""Clients of the shop: each from an address of its own, every request through the ingress."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import http.server
import json
import random
import socket
import socketserver
import ssl
import struct
import threading
import time
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.total = 0
        self.by_status = Counter()
        self.failures: list[str] = []
        # Requests on their way: token → when each was sent.
        self.in_flight: dict[object, float] = {}

    def begin(self) -> object:
        token = object()
        with self.lock:
            self.in_flight[token] = time.monotonic()
        return token

    def settle(self, sent_before: float, timeout: float = 40) -> None:
        """Wait until every request sent before `sent_before` has its answer (or none) counted:
        a fault's failures include those of requests it held up past its own window."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not any(t < sent_before for t in self.in_flight.values()):
                    return
            time.sleep(0.1)

    def record(self, method: str, path: str, status: int | None, detail: str = "", token: object = None) -> None:
        with self.lock:
            self.in_flight.pop(token, None)
            self.total += 1
            self.by_status[status or "error"] += 1
            if status is None or status >= 500:
                self.failures.append(f"{method} {path} → {status or detail}")

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.total, len(self.failures)


class Client:
    """One client address behind the ingress (nginx sees it as the peer and appends it to XFF)."""

    def __init__(self, ingress: tuple[str, int], host: str, ca_file: str, source_ip: str, stats: Stats):
        self.ingress = ingress
        self.host = host
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.source_ip = source_ip
        self.stats = stats
        self.token: str | None = None
        self.refresh: str | None = None

    def call(self, method: str, path: str, body=None, headers=None, token: str | None = None,
             raw: bytes | None = None, content_type: str | None = None):
        h = {"Host": self.host, "Accept": "application/json"}
        if body is not None:
            raw = json.dumps(body).encode()
            content_type = "application/json"
        if content_type:
            h["Content-Type"] = content_type
        token = token or self.token
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        conn = http.client.HTTPSConnection(
            self.ingress[0], self.ingress[1], context=self.ctx, timeout=30, source_address=(self.source_ip, 0)
        )
        token = self.stats.begin()
        try:
            conn.request(method, path, body=raw, headers=h)
            r = conn.getresponse()
            data = r.read()
            status = r.status
            resp_headers = {k.lower(): v for k, v in r.getheaders()}
        except (OSError, http.client.HTTPException) as e:
            self.stats.record(method, path, None, repr(e), token)
            return None, {}, None
        finally:
            conn.close()
        self.stats.record(method, path.split("?")[0], status, token=token)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data
        return status, resp_headers, parsed

    def expect(self, want: int, method: str, path: str, **kw):
        status, headers, body = self.call(method, path, **kw)
        if status != want:
            raise AssertionError(f"{method} {path} from {self.source_ip} → {status} (expected {want}): {str(body)[:300]}")
        return body

    # --- flows ----------------------------------------------------------------------------------

    def register_and_login(self, email: str, password: str) -> None:
        self.expect(201, "POST", "/v1/auth/register", body={"email": email, "password": password})
        self.login(email, password)

    def login(self, email: str, password: str) -> None:
        pair = self.expect(200, "POST", "/v1/auth/login", body={"email": email, "password": password})
        self.token, self.refresh = pair["access_token"], pair["refresh_token"]

    def rotate(self) -> None:
        pair = self.expect(200, "POST", "/v1/auth/refresh", body={"refresh_token": self.refresh})
        self.token, self.refresh = pair["access_token"], pair["refresh_token"]

    def browse(self, pages: int = 3, limit: int = 10) -> list[dict]:
        items, cursor = [], None
        for _ in range(pages):
            path = f"/v1/items?limit={limit}&sort=price" + (f"&cursor={cursor}" if cursor else "")
            page = self.expect(200, "GET", path, token=None)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items

    def order(self, item_id: str) -> dict:
        key = str(uuid.uuid4())
        body = {"lines": [{"item_id": item_id, "quantity": 1}]}
        first = self.expect(201, "POST", "/v1/orders", body=body, headers={"Idempotency-Key": key})
        again = self.expect(201, "POST", "/v1/orders", body=body, headers={"Idempotency-Key": key})
        if again["id"] != first["id"]:
            raise AssertionError(f"Idempotency-Key {key} made two orders: {first['id']} and {again['id']}")
        return first

    def upload(self, item_id: str, content: bytes, name: str = "photo.png") -> dict:
        boundary = uuid.uuid4().hex
        raw = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n"
        ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.expect(
            202, "POST", f"/v1/items/{item_id}/images", raw=raw,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )


def image_variants(client: Client, images: list[tuple[str, str]]) -> list[str]:
    """The URL of every ready size of the given (item, image) uploads, as the item's image list
    names them; an upload whose image is not ready (the corrupt one) has none."""
    wanted: dict[str, set[str]] = {}
    for item, image in images:
        wanted.setdefault(item, set()).add(image)
    urls = []
    for item, ids in sorted(wanted.items()):
        for image in client.expect(200, "GET", f"/v1/items/{item}/images", token=None):
            if image["id"] in ids and image["status"] == "ready":
                urls += [v["url"] for v in image["variants"]]
    return sorted(urls)


def fetch_digests(client: Client, urls: list[str], threads: int = 6) -> dict[str, str]:
    """sha256 of each URL's body, or why it could not be read (`HTTP 503`, `no answer`)."""
    def one(url: str) -> str:
        status, _, body = client.call("GET", url, token=None, headers={"Accept": "*/*"})
        if status != 200 or not isinstance(body, bytes):
            return f"HTTP {status}" if status else "no answer"
        return hashlib.sha256(body).hexdigest()

    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(urls, pool.map(one, urls)))


def png(width: int, height: int, seed: int) -> bytes:
    """A noisy RGB PNG (noise so it does not compress to nothing)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(width * 3)) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class SmtpSink(socketserver.ThreadingTCPServer):
    """Enough SMTP for the worker's plain `smtp://` transport; counts the messages it accepts."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        self.messages: list[bytes] = []
        # When each of `messages` arrived (time.monotonic()), same order.
        self.arrivals: list[float] = []
        self.lock = threading.Lock()
        super().__init__(addr, _SmtpHandler)

    @staticmethod
    def message_id(message: bytes) -> str:
        for line in message.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                return line.split(b":", 1)[1].strip().decode(errors="replace")
        return ""


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 rehearsal ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-rehearsal\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    data += chunk
                with self.server.lock:
                    self.server.messages.append(data)
                    self.server.arrivals.append(time.monotonic())
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


class HttpSink(socketserver.ThreadingTCPServer):
    """Stands in for an OTLP collector and Sentry: answers 200 to any POST and counts by path."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        self.requests = Counter()
        super().__init__(addr, _HttpSinkHandler)


class _HttpSinkHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            request_line = self.rfile.readline()
            if not request_line:
                return
            length = 0
            while True:
                line = self.rfile.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            self.rfile.read(length)
            parts = request_line.split()
            self.server.requests[parts[1].decode() if len(parts) > 1 else "?"] += 1
            self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SteadyTraffic:
    """Customers browsing, refreshing and ordering, and an admin uploading, until stopped."""

    def __init__(self, make_client, customers: list[tuple[str, str]], admin: Client, item_ids: list[str]):
        self.make_client = make_client
        self.customers = customers
        self.admin = admin
        self.item_ids = item_ids
        self.stop = threading.Event()
        self.orders: list[str] = []
        self.jobs: list[str] = []
        self.images: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _failed(self, error: AssertionError) -> None:
        with self.lock:
            self.errors.append(str(error))
        # What a real client does after an unexpected answer: wait a little and go on.
        self.stop.wait(0.3)

    def _customer(self, index: int, email: str, password: str) -> None:
        client = self.make_client(index)
        logged_in = False
        last_refresh = time.monotonic()
        n = 0
        while not self.stop.is_set():
            try:
                if not logged_in:
                    client.login(email, password)
                    logged_in, last_refresh = True, time.monotonic()
                n += 1
                client.browse(pages=2)
                client.expect(200, "GET", f"/v1/items/{random.choice(self.item_ids)}", token=None)
                client.expect(200, "GET", "/v1/auth/me")
                if n % 6 == 0:
                    order = client.order(random.choice(self.item_ids))
                    with self.lock:
                        self.orders.append(order["id"])
                if time.monotonic() - last_refresh > 4:
                    # A rotation whose answer is lost leaves the old token spent: log in again.
                    logged_in = False
                    client.rotate()
                    logged_in, last_refresh = True, time.monotonic()
                # A person's pace: ~3 page views a second and an order every two seconds keep each
                # customer inside the per-user write and per-address auth budgets.
                self.stop.wait(0.3)
            except AssertionError as e:
                self._failed(e)

    def _uploader(self) -> None:
        seed = 1000
        while not self.stop.is_set():
            seed += 1
            item = random.choice(self.item_ids)
            try:
                answer = self.admin.upload(item, png(48, 32, seed))
                with self.lock:
                    self.jobs.append(answer["job_id"])
                    self.images.append((item, answer["image_id"]))
            except AssertionError as e:
                self._failed(e)
            self.stop.wait(1.5)

    def error_count(self) -> int:
        with self.lock:
            return len(self.errors)

    def start(self) -> None:
        for i, (email, password) in enumerate(self.customers):
            self.threads.append(threading.Thread(target=self._customer, args=(i, email, password), daemon=True))
        self.threads.append(threading.Thread(target=self._uploader, daemon=True))
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


class PaymentGateway(http.server.ThreadingHTTPServer):
    """Stands in for a payment gateway speaking docs/payments.md's protocol: `POST /payments`
    answers a client secret, `POST /refunds` 200 (both only with the right bearer key), and each
    outcome follows as a webhook signed like the provider's (HMAC-SHA256 of "<t>.<body>") sent to
    the shop through the ingress, as a real provider reaches it — landing on either replica."""

    daemon_threads = True

    def __init__(self, addr, api_key: str, webhook_secret: str):
        self.api_key = api_key
        self.webhook_secret = webhook_secret.encode()
        self.client: Client | None = None  # set once the ingress listens
        self.calls = Counter()
        self.undelivered: list[str] = []
        super().__init__(addr, _GatewayHandler)

    def deliver_later(self, kind: str, payment: dict) -> None:
        def deliver():
            body = json.dumps({"id": f"evt_{uuid.uuid4().hex}", "type": kind, "created": int(time.time()),
                               "data": {k: payment[k] for k in ("payment_id", "order_id", "amount_cents", "currency")}}).encode()
            for _ in range(20):
                t = int(time.time())
                sig = hmac.new(self.webhook_secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
                status, _, _ = self.client.call("POST", "/v1/payments/webhook", raw=body, content_type="application/json",
                                                headers={"Payment-Signature": f"t={t},v1={sig}"})
                if status == 200:
                    return
                time.sleep(0.5)
            self.undelivered.append(kind)

        threading.Timer(0.2, deliver).start()


class _GatewayHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server's name)
        gw: PaymentGateway = self.server
        payment = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.headers.get("authorization") != f"Bearer {gw.api_key}" or not self.headers.get("idempotency-key"):
            self.send_response(401)
            self.end_headers()
            return
        gw.calls[self.path] += 1
        if self.path == "/payments":
            answer = json.dumps({"client_secret": f"gw_{uuid.uuid4().hex}"}).encode()
            gw.deliver_later("payment.succeeded", payment)
        elif self.path == "/refunds":
            answer = b"{}"
            gw.deliver_later("refund.succeeded", payment)
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
