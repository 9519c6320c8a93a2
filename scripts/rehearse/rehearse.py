"""The production rehearsal: the chart rendered with production values, run the way a cluster
runs it, behind nginx, scraped by Prometheus, under traffic; then a rolling upgrade. Driven by
scripts/rehearse.sh, which installs the tools and builds the binaries.
See docs/rehearsal.md for what is imitated and how."""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import traceback
import threading
import time
import uuid

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from cluster import Cluster, Pod, RehearsalError, hook_kinds, hook_weight, load_manifests  # noqa: E402
from backing import NatsCluster, Postgres  # noqa: E402
from edge import Edge  # noqa: E402
from monitoring import Monitoring, dashboard_queries  # noqa: E402
from traffic import Client, HttpSink, PaymentGateway, SmtpSink, Stats, SteadyTraffic, fetch_digests, free_port, image_variants, png  # noqa: E402

NAMESPACE = "rehearsal"
RELEASE = "storefront"
HOST = "shop.example.com"
INGRESS = ("127.0.3.1", 0)
AUTH_BURST = 10
# The load mix (bench/load.sh): users, and seconds measured.
LOAD_USERS, LOAD_SECONDS = 20, 20


def log(msg: str) -> None:
    print(f"rehearse: {msg}", flush=True)


class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.rows: list[tuple[str, str, str]] = []  # (check, result, ok)
        self.t0 = time.monotonic()
        self.failed = False
        # Requests that failed while a fault was injected (the chaos rows judge those).
        self.failed_in_faults = 0
        # Pod terminations a step left running (preStop, grace): joined at the end of the run.
        self.background: list[threading.Thread] = []
        # Tables printed after the checks' (the load mix's).
        self.reports: list[str] = []

    def row(self, check: str, result: str, ok: bool) -> None:
        self.rows.append((check, result, "ok" if ok else "FAILED"))
        log(f"{'ok' if ok else 'FAILED'}: {check}: {result}")
        if not ok:
            self.failed = True

    # --- preparation ----------------------------------------------------------------------------

    def sh(self, *argv, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kw)

    def prepare(self) -> None:
        a = self.args
        # The load generator, before anything runs: a missing install fails now, not minutes in.
        out = subprocess.run(["bash", "scripts/tools.sh", "locust"], cwd=a.repo, capture_output=True, text=True)
        if out.returncode != 0:
            raise RehearsalError("scripts/tools.sh locust failed:\n" + out.stderr[-2000:])
        self.pg = Postgres(self.work, free_port())
        self.pg.start()
        # Its streaming replica: catalog-order's public reads (DATABASE_READ_URL).
        self.pg.start_standby(free_port())
        # A three-node JetStream cluster: the production values keep R3 copies of every stream.
        self.nats = NatsCluster(a.nats_server, self.work, a.nats_port)
        self.nats.start()
        password = secrets.token_urlsafe(24)
        role = "storefront"
        self.pg.psql(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
        for db in ("auth", "catalog"):
            self.pg.psql(f"CREATE DATABASE {db} OWNER {role}")
        url = lambda db, port=self.pg.port: f"postgres://{role}:{password}@127.0.0.1:{port}/{db}"  # noqa: E731

        keys = os.path.join(self.work, "keys")
        os.makedirs(keys, exist_ok=True)
        self.sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", f"{keys}/signing.pem")
        # The ingress certificate, from a CA of the rehearsal's own that the clients trust.
        self.sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{keys}/ca.key", "-out", f"{keys}/ca.crt", "-days", "1", "-subj", "/CN=rehearsal CA")
        self.sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{keys}/tls.key", "-out", f"{keys}/tls.csr", "-subj", f"/CN={HOST}")
        with open(f"{keys}/ext.cnf", "w") as f:
            f.write(f"subjectAltName=DNS:{HOST},IP:{INGRESS[0]}\n")
        self.sh("openssl", "x509", "-req", "-in", f"{keys}/tls.csr", "-CA", f"{keys}/ca.crt", "-CAkey", f"{keys}/ca.key",
                "-CAcreateserial", "-out", f"{keys}/tls.crt", "-days", "1", "-extfile", f"{keys}/ext.cnf")
        self.ca = f"{keys}/ca.crt"

        self.smtp = SmtpSink(("127.0.0.1", 0))
        self.sink = HttpSink(("127.0.0.1", 0))
        webhook_secret, gateway_key = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
        self.gateway = PaymentGateway(("127.0.0.1", 0), gateway_key, webhook_secret)
        for server in (self.smtp, self.sink, self.gateway):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        smtp_port, sink_port = self.smtp.server_address[1], self.sink.server_address[1]

        # The Secret an operator creates before installing (secrets.existingSecret).
        data = {
            "auth-database-url": url("auth"),
            "catalog-database-url": url("catalog"),
            "catalog-database-read-url": url("catalog", self.pg.standby_port),
            "nats-url": self.nats.url,
            "auth-signing-keys": open(f"{keys}/signing.pem").read(),
            "smtp-url": f"smtp://127.0.0.1:{smtp_port}",
            "cursor-secret": secrets.token_urlsafe(48),
            "payment-webhook-secrets": webhook_secret,
            "payment-gateway-api-key": gateway_key,
            "backup-admin-url": url("postgres"),
            "sentry-dsn": f"http://rehearsal@127.0.0.1:{sink_port}/1",
            "otlp-headers": "authorization=Bearer%20rehearsal",
        }
        self.secret = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "storefront"}, "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        self.tls_secret = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "storefront-tls"}, "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(open(f"{keys}/tls.crt", "rb").read()).decode(),
                "tls.key": base64.b64encode(open(f"{keys}/tls.key", "rb").read()).decode(),
            },
        }
        # Values an operator sets for this installation on top of ci/full.yaml: where the
        # collector and the ingress controller are, the image tag the binaries stand for.
        self.values = os.path.join(self.work, "rehearsal-values.yaml")
        with open(self.values, "w") as f:
            yaml.safe_dump({
                "observability": {"otlpEndpoint": f"http://127.0.0.1:{sink_port}"},
                "trustedProxies": [f"{INGRESS[0]}/32"],
                # A gateway of the rehearsal's own (traffic.PaymentGateway).
                "payments": {"gatewayUrl": f"http://127.0.0.1:{self.gateway.server_address[1]}"},
                "ingress": {"host": HOST},
                "secrets": {"keys": {"sentryDsn": "sentry-dsn", "otlpHeaders": "otlp-headers",
                                     "catalogDatabaseReadUrl": "catalog-database-read-url"}},
                "serviceMonitor": {"interval": "30s"},
                # KEDA's NATS JetStream scaler reads this monitoring endpoint (not run here).
                "keda": {"natsMonitoringEndpoint": self.nats.monitoring_endpoint},
                # Stated here so the rehearsal can hold the login budget to it.
                "extraEnv": {"RATE_LIMIT_AUTH_BURST": str(AUTH_BURST)},
            }, f)

    def render(self, *extra: str) -> list[dict]:
        a = self.args
        cmd = [a.helm, "template", RELEASE, a.chart, "--namespace", NAMESPACE, "--kube-version", "1.33.0",
               "--api-versions", "monitoring.coreos.com/v1", "--api-versions", "keda.sh/v1alpha1"]
        for v in a.values + [self.values]:
            cmd += ["-f", v]
        cmd += list(extra)
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RehearsalError("helm template failed:\n" + out.stderr)
        return load_manifests(out.stdout)

    # --- running --------------------------------------------------------------------------------

    def cluster_for(self, manifests: list[dict]) -> Cluster:
        images = {
            "auth": [os.path.join(self.args.bin_dir, "auth")],
            "catalog-order": [os.path.join(self.args.bin_dir, "catalog-order")],
            "worker": [os.path.join(self.args.bin_dir, "worker")],
            # The backup CronJobs' postgres image and the helm test's curl image: this machine's
            # bash, PostgreSQL client tools and curl.
            "postgres": [], "curl": [],
        }
        base_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        cluster = Cluster(self.work, NAMESPACE, images, base_env)
        for obj in [self.secret, self.tls_secret] + manifests:
            if not hook_kinds(obj) or obj["kind"] != "Job" and obj["kind"] != "Pod":
                cluster.apply(obj)
        return cluster

    def run_job(self, cluster: Cluster, job: dict, suffix: str = "", timeout: float = 120) -> Pod:
        name = job["metadata"]["name"]
        spec = job["spec"]
        template = spec["jobTemplate"]["spec"]["template"] if job["kind"] == "CronJob" else spec["template"]
        kind = job["kind"]
        pod = cluster.start_pod(f"{kind}/{name}", template, f"{name}{suffix}-{uuid.uuid4().hex[:5]}")
        try:
            pod.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            cluster.kill(pod)
            raise RehearsalError(f"{kind}/{name} (container {pod.container['name']}) did not finish in {timeout:.0f} s:\n{pod.last_log_lines()}")
        pod.exit_code = pod.proc.returncode
        if pod.exit_code != 0:
            raise RehearsalError(
                f"{kind}/{name} (container {pod.container['name']}) exited {pod.exit_code}:\n{pod.last_log_lines()}"
            )
        return pod

    def run_hooks(self, cluster: Cluster, manifests: list[dict], phase: str) -> None:
        hooks = sorted((o for o in manifests if phase in hook_kinds(o)), key=hook_weight)
        for hook in hooks:
            if hook["kind"] == "Job":
                self.run_job(cluster, hook)
                log(f"{phase} hook Job/{hook['metadata']['name']} succeeded")
            elif hook["kind"] == "Pod":
                pod = cluster.start_pod(f"Pod/{hook['metadata']['name']}", hook, hook["metadata"]["name"])
                pod.proc.wait(timeout=60)
                pod.exit_code = pod.proc.returncode
                if pod.exit_code != 0:
                    raise RehearsalError(f"{phase} hook Pod/{hook['metadata']['name']} exited {pod.exit_code}:\n{pod.last_log_lines()}")
                log(f"{phase} hook Pod/{hook['metadata']['name']} succeeded")
            else:
                cluster.apply(hook)

    def replicas(self, cluster: Cluster, deployment: dict) -> int:
        """The HPA's (or KEDA ScaledObject's) minimum when it scales the Deployment."""
        name = deployment["metadata"]["name"]
        for hpa in cluster.of_kind("HorizontalPodAutoscaler"):
            if hpa["spec"]["scaleTargetRef"]["name"] == name:
                return int(hpa["spec"].get("minReplicas", 1))
        for so in cluster.of_kind("ScaledObject"):
            if so["spec"]["scaleTargetRef"]["name"] == name:
                return int(so["spec"].get("minReplicaCount", 0)) or 1
        return int(deployment["spec"].get("replicas", 1))

    def start_deployments(self, cluster: Cluster, revision: int) -> dict[str, list[Pod]]:
        pods = {}
        for dep in cluster.of_kind("Deployment"):
            name = dep["metadata"]["name"]
            n = self.replicas(cluster, dep)
            pods[name] = [
                cluster.start_pod(f"Deployment/{name}", dep["spec"]["template"], f"{name}-r{revision}-{i}")
                for i in range(n)
            ]
        return pods

    def wait_ready(self, pods: list[Pod], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.ready for p in pods):
                self.sync_endpoints()
                return
            for p in pods:
                if p.exit_code is not None or p.restarts > 0:
                    raise RehearsalError(
                        f"{p.owner} pod {p.name} (container {p.container['name']}) "
                        f"{'exited ' + str(p.exit_code) if p.exit_code is not None else 'restarted'}:\n{p.last_log_lines()}"
                    )
            time.sleep(0.2)
        slow = [p for p in pods if not p.ready]
        raise RehearsalError(
            "not ready in time: " + ", ".join(f"{p.owner} pod {p.name}" for p in slow) + "\n" + slow[0].last_log_lines()
        )

    # --- the scenario ---------------------------------------------------------------------------

    def run(self) -> None:
        self.prepare()
        t = time.monotonic()
        first = self.render()
        cluster = self.cluster = self.cluster_for(first)
        ingress_port = free_port(INGRESS[0])
        edge = self.edge = Edge(cluster, self.work, self.args.nginx, (INGRESS[0], ingress_port), (
            os.path.join(self.work, "keys", "tls.crt"), os.path.join(self.work, "keys", "tls.key")))
        mon = self.mon = Monitoring(cluster, self.work, free_port(), self.args.scrape_interval)

        # 1. helm install: pre-install hooks, then the release's objects.
        self.run_hooks(cluster, first, "pre-install")
        self.row("pre-install hooks (migrations)", f"{sum(1 for o in first if 'pre-install' in hook_kinds(o) and o['kind'] == 'Job')} Jobs exited 0", True)
        edge.start()
        mon.write_config()
        mon.start()

        endpoints_lock = threading.Lock()

        def endpoints_changed():
            # From the kubelet thread and from steps that roll Deployments side by side.
            with endpoints_lock:
                edge.reload()
                mon.update_targets()

        cluster.on_endpoints_change = endpoints_changed
        deployments = self.start_deployments(cluster, 1)
        all_pods = [p for ps in deployments.values() for p in ps]
        mon.update_targets()
        self.wait_ready(all_pods, 90)
        ready_s = time.monotonic() - t
        self.row("render → every replica ready",
                 f"{ready_s:.1f} s; " + ", ".join(f"{n.removeprefix(RELEASE + '-')} ×{len(p)}" for n, p in deployments.items()),
                 all(len(p) >= 2 for p in deployments.values()))
        # Readiness waits for each process's JetStream provisioning (check `jetstream`), so this
        # must find the topology complete at once; it proves the readiness check holds.
        provisioned_s = self.nats.wait_provisioned(60)
        self.row("JetStream topology provisioned by the services",
                 f"{provisioned_s:.1f} s after every replica was ready (readiness waits for it)", provisioned_s < 3.0)

        # 2. helm test.
        self.run_hooks(cluster, first, "test")
        self.row("helm test pod", "exited 0", True)

        # 3. Traffic through the ingress.
        stats = self.stats = Stats()
        addr = (INGRESS[0], ingress_port)
        client = lambda n: Client(addr, HOST, self.ca, f"127.0.4.{n + 10}", stats)  # noqa: E731
        self.check_routes(client(9))
        self.gateway.client = client(8)
        admin = self.make_admin(cluster, client(0))
        item_ids = self.seed_catalog(admin)
        customers = []
        for i in range(4):
            c = client(i + 1)
            email, password = f"rehearsal-{i}-{uuid.uuid4().hex[:6]}@example.com", f"correct horse {secrets.token_hex(6)}"
            c.register_and_login(email, password)
            c.rotate()
            seen = c.browse(pages=4, limit=5)
            if len({i["id"] for i in seen}) != len(seen) or len(seen) < 15:
                raise RehearsalError(f"cursor pages repeat or stop early: {len(seen)} items")
            order = c.order(item_ids[i])
            if i < 2:
                self.check_payment(c, order["id"], refund=(i == 1))
            customers.append((email, password))
        uploads = [admin.upload(item_ids[0], png(64, 48, seed)) for seed in range(3)]
        jobs = [u["job_id"] for u in uploads]
        self.uploaded = [(item_ids[0], u["image_id"]) for u in uploads]
        broken = png(256, 256, 99)
        dying = admin.upload(item_ids[1], broken[: len(broken) // 2])["job_id"]
        self.wait_jobs(admin, jobs, "succeeded")
        self.wait_jobs(admin, [dying], "dead")
        self.row("a corrupt image's job", "dead (moved to the DLQ)", True)
        self.check_rate_limits(client)
        self.run_load_mix(addr, deployments)

        # Steady traffic while Prometheus scrapes a few times.
        steady = SteadyTraffic(lambda n: client(n + 20), customers, admin, item_ids)
        steady.start()
        mon.wait_scraped(60)
        time.sleep(max(25.0, 6 * self._interval_s()))
        self.check_monitoring(cluster, mon)

        # 4. One run of each backup CronJob; a suspended one only runs when an operator makes a
        # Job from it (the images restore, step 6b).
        for cron in cluster.of_kind("CronJob"):
            if cron["spec"].get("suspend"):
                log(f"CronJob/{cron['metadata']['name']} is suspended: not run on a schedule")
                continue
            pod = self.run_job(cluster, cron, timeout=180)
            summary = self._summary(pod) if "result=" in pod.last_log_lines(200) else pod.last_log_lines(2).strip().replace("\n", " | ")
            self.row(f"CronJob/{cron['metadata']['name']}", "exited 0: " + summary[-150:], True)

        # 5. helm upgrade with a changed value, under the same traffic.
        before_total, before_failed = stats.snapshot()
        upgrade_s = self.rolling_upgrade(cluster, deployments)
        after_total, after_failed = stats.snapshot()
        self.row("rolling upgrade under traffic",
                 f"{upgrade_s:.0f} s, {after_total - before_total} requests, {after_failed - before_failed} failed",
                 after_failed == before_failed and not steady.errors)
        if steady.errors:
            log("traffic errors: " + "; ".join(steady.errors[:5]))

        # 6. Faults under the same traffic: a replica of each service killed, PostgreSQL and NATS
        # restarted. Only requests in flight at the moment of a fault may fail.
        self.chaos(cluster, steady)
        steady.finish()
        self.check_nothing_lost(admin, steady)

        # 6b. The images survive a NATS node losing its volume (R3), and every node losing it
        # (the runbook: restart the services, run the images restore).
        self.check_images_survive(cluster, client(50), deployments, self.uploaded + steady.images)

        # 7. A service with no replica left pages.
        self.check_down_alert(cluster, mon)

        total, failed = stats.snapshot()
        self.row("requests through nginx, outside the faults",
                 f"{total} answered, {failed - self.failed_in_faults} failed (5xx or no answer)"
                 + (f"; {self.failed_in_faults} in flight when a replica was killed" if self.failed_in_faults else ""),
                 failed == self.failed_in_faults)
        if stats.failures:
            log("failures: " + "; ".join(stats.failures[:10]))
        self.row("e-mails at the SMTP sink", f"{len(self.smtp.messages)}", len(self.smtp.messages) > 0)
        self.row("spans at the OTLP sink", f"{self.sink.requests.get('/v1/traces', 0)} exports", self.sink.requests.get("/v1/traces", 0) > 0)
        for th in self.background:
            th.join()

    def _interval_s(self) -> float:
        return float(self.args.scrape_interval.rstrip("s"))

    def make_admin(self, cluster: Cluster, admin: Client) -> Client:
        """`kubectl exec deploy/storefront-auth -- auth create-admin`, then a login through nginx."""
        pod = next(p for p in cluster.pods.values() if p.owner == f"Deployment/{RELEASE}-auth" and p.ready)
        email, password = f"admin-{uuid.uuid4().hex[:6]}@example.com", f"admin {secrets.token_hex(12)}"
        out = cluster.exec_in(pod, cluster.command(pod)[:1] + ["create-admin", "--email", email], (password + "\n").encode())
        if out.returncode != 0:
            raise RehearsalError(f"auth create-admin exited {out.returncode}: {out.stderr.decode()[-800:]}")
        admin.login(email, password)
        self.admin_login = (email, password)
        return admin

    def seed_catalog(self, admin: Client) -> list[str]:
        cat = admin.expect(201, "POST", "/v1/categories", body={"name": "Mugs", "slug": f"mugs-{uuid.uuid4().hex[:6]}"})
        ids = []
        for i in range(24):
            item = admin.expect(201, "POST", "/v1/items", body={
                "category_id": cat["id"], "sku": f"MUG-{uuid.uuid4().hex[:8].upper()}", "name": f"Mug {i}",
                "description": "A mug for the rehearsal", "price_cents": 500 + 10 * i, "currency": "EUR", "stock": 100000,
            })
            ids.append(item["id"])
        return ids

    def wait_jobs(self, admin: Client, job_ids: list[str], final: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = set(job_ids)
        last = {}
        while pending and time.monotonic() < deadline:
            for job in list(pending):
                body = admin.expect(200, "GET", f"/v1/jobs/{job}")
                last[job] = body["status"]
                if body["status"] == final:
                    pending.discard(job)
                elif body["status"] in ("succeeded", "failed", "dead"):
                    raise RehearsalError(f"job {job} ended {body['status']}, expected {final}: {body.get('error')}")
            time.sleep(0.5)
        if pending:
            raise RehearsalError(f"{len(pending)} job(s) not {final} after {timeout:.0f} s: {[(j, last.get(j)) for j in pending]}")

    def check_payment(self, c: Client, order_id: str, refund: bool) -> None:
        """A payment through the gateway provider: the gateway's signed webhook, sent through the
        ingress to either replica, pays the order; cancelling it refunds (a job, the gateway's
        refund call, its webhook)."""
        def until(field: str, want: str) -> None:
            got = None
            for _ in range(60):
                order = c.expect(200, "GET", f"/v1/orders/{order_id}")
                got = order["status"] if field == "status" else (order.get("payment") or {}).get("status")
                if got == want:
                    return
                time.sleep(0.25)
            raise RehearsalError(f"order {order_id}: {field} is {got}, not {want}, 15 s after paying")
        payment = c.expect(201, "POST", f"/v1/orders/{order_id}/payment", body={},
                           headers={"Idempotency-Key": str(uuid.uuid4())})
        if payment["provider"] != "gateway" or not payment["client_secret"].startswith("gw_"):
            raise RehearsalError(f"the payment was not opened with the gateway: {payment}")
        until("status", "paid")
        what = "paid"
        if refund:
            c.expect(200, "POST", f"/v1/orders/{order_id}/cancel")
            until("payment", "refunded")
            what = "paid, cancelled, refunded"
        self.row(f"payment through the gateway ({what})",
                 f"webhooks via the ingress; gateway calls {dict(self.gateway.calls)}", not self.gateway.undelivered)

    def check_routes(self, c: Client) -> None:
        """The Ingress carries the public API of both services on one host — each one's endpoints,
        JWKS, OpenAPI document and docs UI under its own path — and nothing else: the probes'
        /health/* and /metrics are the controller's 404."""
        public = {
            "/v1/categories": None,
            "/v1/items?limit=1": None,
            "/.well-known/jwks.json": None,
            "/auth/openapi.json": "Storefront auth",
            "/catalog-order/openapi.json": "Storefront catalog and orders",
            "/auth/docs/": None,
            "/catalog-order/docs/": None,
        }
        for path, title in public.items():
            status, _, body = c.call("GET", path)
            if status != 200:
                raise RehearsalError(f"GET {path} through the ingress answered {status}, not 200")
            if title and (not isinstance(body, dict) or body.get("info", {}).get("title") != title):
                raise RehearsalError(f"GET {path} through the ingress is not {title}'s document")
        hidden = ["/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs/"]
        for path in hidden:
            status, _, _ = c.call("GET", path)
            if status != 404:
                raise RehearsalError(f"GET {path} through the ingress answered {status}: it must not be routed")
        self.row("ingress routes", f"{len(public)} public paths reach their service; "
                 f"{len(hidden)} others (probes, metrics, unprefixed docs) 404", True)

    def check_rate_limits(self, client) -> None:
        """One client exhausting the login budget does not limit another behind the same proxy."""
        noisy, quiet = client(40), client(41)
        limited_after = None
        for n in range(1, 80):
            status, headers, _ = noisy.call("POST", "/v1/auth/login", body={"email": f"nobody-{n}@example.com", "password": "wrong password 123"})
            if status == 429:
                limited_after = n
                if "retry-after" not in headers:
                    raise RehearsalError("429 without Retry-After")
                break
        status, _, _ = quiet.call("POST", "/v1/auth/login", body={"email": "someone@example.com", "password": "wrong password 123"})
        # The budget is shared by every auth replica: a burst, not a burst per replica (+10 %,
        # and a token refilled while the loop runs).
        self.row("login budget behind the proxy: shared by replicas, separate per client",
                 f"first client limited after {limited_after} logins (burst {AUTH_BURST}, 2 replicas); the second then got {status}",
                 limited_after is not None and limited_after <= AUTH_BURST * 1.1 + 2 and status == 401)

    def run_load_mix(self, addr: tuple[str, int], deployments: dict[str, list[Pod]]) -> None:
        """bench/load.sh: the traffic mix (Locust) through the ingress, with the CA and Host the
        rehearsal's clients use, from 127.0.0.1 (an address of its own, so auth's per-address
        budget is its own), on the quiet stack before the steady traffic starts. Every request
        must get an answer the mix expects; the table goes to the log, to <work>/load/ and, with
        REHEARSE_SAVE_LOAD=1, to bench/report/load-mix.md."""
        out = os.path.join(self.work, "load")
        env = dict(os.environ, LOAD_OUT=out, LOAD_CA_FILE=self.ca, LOAD_HOST_HEADER=HOST,
                   LOAD_ADMIN_EMAIL=self.admin_login[0], LOAD_ADMIN_PASSWORD=self.admin_login[1])
        # Settings of the mix that a caller's environment might hold: the rehearsal runs the defaults.
        for name in ("LOAD_MIX", "LOAD_THINK", "LOAD_CUSTOMERS"):
            env.pop(name, None)
        t = time.monotonic()
        try:
            run = subprocess.run(["bash", "bench/load.sh", f"https://{addr[0]}:{addr[1]}", str(LOAD_USERS), f"{LOAD_SECONDS}s"],
                                 cwd=self.args.repo, env=env, capture_output=True, text=True, timeout=LOAD_SECONDS + 90)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"bench/load.sh did not finish in {LOAD_SECONDS + 90} s (log: {out}/locust.log)") from None
        took = time.monotonic() - t
        try:
            with open(os.path.join(out, "load_summary.json")) as f:
                result = json.load(f)
            with open(os.path.join(out, "load-mix.md")) as f:
                table = f.read()
        except OSError:
            raise RehearsalError(f"bench/load.sh exited {run.returncode} without a table:\n{run.stderr[-2000:]}") from None
        for line in table.splitlines():
            log(f"  {line}")
        self.reports.append(f"Load mix through the ingress (bench/load.sh; {out}/load-mix.md):\n\n{table}")
        total = next(r for r in result["rows"] if r["endpoint"] == "all")
        ms = lambda v: "–" if v is None else f"{v:.0f} ms"  # noqa: E731 — no answer, no percentile
        ok = run.returncode == 0 and total["failures"] == 0 and total["requests"] > 0 and not result["exceptions"]
        self.row("load mix through the ingress (bench/load.sh)",
                 f"{LOAD_USERS} users × {LOAD_SECONDS} s: {total['requests']} requests, {total['req/s']:.0f}/s, "
                 f"{total['failures']} failed; all endpoints p50 {ms(total['p50'])}, p99 {ms(total['p99'])} "
                 f"({took:.0f} s with set-up)", ok)
        if not ok:
            log("  " + run.stderr.strip().replace("\n", "\n  ")[-1500:])
        if os.environ.get("REHEARSE_SAVE_LOAD") == "1":
            if ok:
                self.save_load_mix(table, deployments)
            else:
                log("REHEARSE_SAVE_LOAD: a run with failures is not saved")

    def save_load_mix(self, table: str, deployments: dict[str, list[Pod]]) -> None:
        """bench/report/load-mix.md: the table of this run, with what it ran on, for the capacity
        model to cite."""
        repo = self.args.repo
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        replicas = ", ".join(f"{n.removeprefix(RELEASE + '-')} ×{len(p)}" for n, p in deployments.items())
        binaries = "binaries from REHEARSE_BIN_DIR" if os.environ.get("REHEARSE_BIN_DIR") else "static release binaries"
        path = os.path.join(repo, "bench", "report", "load-mix.md")
        with open(path, "w") as f:
            f.write(
                "# The load mix through the ingress\n\n"
                "Written by `REHEARSE_SAVE_LOAD=1 make rehearse` (docs/rehearsal.md, \"The load mix\"): "
                "bench/load.sh (Locust, bench/load/locustfile.py) through the rehearsal's nginx ingress (TLS) "
                f"to the production chart's Deployments — {replicas} — on PostgreSQL and a three-node NATS "
                f"cluster, everything (the generator too) on this machine's {os.cpu_count()} cores. "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit or 'unknown'}"
                f"{' with local changes' if dirty else ''}, {binaries}.\n\n" + table)
        log(f"saved the load mix's table to {os.path.relpath(path, repo)}")

    def check_monitoring(self, cluster: Cluster, mon: Monitoring) -> None:
        # A panel has data when every one of its queries answers at least one series.
        panels: dict[str, bool] = {}
        for dash, panel, expr in dashboard_queries(cluster):
            key = f"{dash} / {panel}"
            has = bool(mon.query(expr))
            panels[key] = panels.get(key, True) and has
            if not has:
                log(f"  no data: {key}: {expr}")
        with_data = sum(panels.values())
        self.row("dashboard panels with data", f"{with_data}/{len(panels)}", with_data == len(panels))
        # catalog-order read the public catalog from the standby (DATABASE_READ_URL).
        replica = mon.query('sum(db_reads_total{database="replica"})')
        primary = mon.query('sum(db_reads_total{database="primary"})')
        value = lambda r: float(r[0]["value"][1]) if r else 0.0  # noqa: E731
        self.row("catalog reads from the read replica (db_reads_total)",
                 f"{value(replica):.0f} from the replica, {value(primary):.0f} from the primary",
                 value(replica) > 0)
        rules = mon.rules()
        broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r.get("health") != "ok"]
        self.row("alert rules evaluate", f"{len(rules) - len(broken)}/{len(rules)} healthy", not broken)
        for b in broken:
            log(f"  rule error: {b}")
        # The corrupt image's job is in the DLQ, so exactly that alert must be on; nothing else.
        active = sorted({a["labels"]["alertname"] for a in mon.alerts()})
        self.row("alerts on healthy traffic (one dead job)", ", ".join(active) or "none",
                 active == ["DeadLetterQueueNotEmpty"])

    def rolling_upgrade(self, cluster: Cluster, deployments: dict[str, list[Pod]]) -> float:
        """`helm upgrade` with a changed value: pre-upgrade hooks, then each changed Deployment
        rolled with maxSurge/maxUnavailable as rendered, old pods honouring preStop and grace."""
        t = time.monotonic()
        second = self.render("--set", "extraEnv.REHEARSAL_REVISION=2")
        self.run_hooks(cluster, second, "pre-upgrade")
        old_templates = {d["metadata"]["name"]: d["spec"]["template"] for d in cluster.of_kind("Deployment")}
        for obj in second:
            if not hook_kinds(obj):
                cluster.apply(obj)
        for dep in cluster.of_kind("Deployment"):
            name = dep["metadata"]["name"]
            if dep["spec"]["template"] == old_templates.get(name):
                continue
            strategy = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
            if int(strategy.get("maxUnavailable", 0)) != 0 or int(strategy.get("maxSurge", 1)) < 1:
                raise RehearsalError(f"Deployment/{name}: the rehearsal rolls with maxSurge ≥ 1, maxUnavailable 0 only")
            old = deployments[name]
            new = []
            for i, pod in enumerate(list(old)):
                fresh = cluster.start_pod(f"Deployment/{name}", dep["spec"]["template"], f"{name}-r2-{i}")
                self.wait_ready([fresh], 60)
                new.append(fresh)
                cluster.terminate(pod)
                if pod.exit_code not in (0, None):
                    raise RehearsalError(f"{pod.owner} pod {pod.name} exited {pod.exit_code} on SIGTERM:\n{pod.last_log_lines()}")
            deployments[name] = new
            log(f"rolled Deployment/{name}: {len(new)} pods")
        return time.monotonic() - t

    def chaos(self, cluster: Cluster, steady: SteadyTraffic) -> None:
        # At most one request per client thread is in flight when a fault strikes.
        in_flight = len(steady.threads)

        def kill_one(service: str):
            def inject():
                pod = next(p for p in sorted(cluster.pods.values(), key=lambda p: p.name)
                           if p.owner == f"Deployment/{RELEASE}-{service}" and p.ready and not p.terminating)
                # SIGKILL: no preStop, no drain; the kubelet starts the container again.
                os.killpg(pod.proc.pid, signal.SIGKILL)
            return inject

        faults = [
            ("SIGKILL an auth replica", kill_one("auth")),
            ("SIGKILL a catalog-order replica", kill_one("catalog-order")),
            ("SIGKILL a worker replica", kill_one("worker")),
            # A NATS machine lost (R3: the other two keep a quorum), then back on its volume.
            ("SIGKILL a NATS node", lambda: self.nats.kill_node(1)),
            # The read replica lost: its reads go to the primary, then back to it.
            ("SIGKILL the read replica (PostgreSQL standby)", self.pg.kill_standby),
        ]
        # Restarting the backing services finds defects not mended yet (docs/rehearsal.md):
        # `make chaos` runs them; CI runs the replica faults.
        if self.args.chaos:
            faults += [
                ("restart PostgreSQL", self.pg.restart),
                ("restart one NATS node", lambda: self.nats.restart_node(0)),
                ("restart NATS (all nodes)", self.nats.restart),
            ]
        for name, inject in faults:
            total0, failed0 = self.stats.snapshot()
            errors0 = steady.error_count()
            t = time.monotonic()
            inject()
            time.sleep(2)
            self.wait_all_ready(cluster, 90)
            recovered = time.monotonic() - t
            time.sleep(3)
            # Requests the fault held up (an upload waits up to 10 s for NATS) count here.
            self.stats.settle(time.monotonic())
            total, failed = self.stats.snapshot()
            lost = failed - failed0
            self.failed_in_faults += lost
            self.row(f"chaos: {name}",
                     f"recovered in {recovered:.1f} s; {total - total0} requests, {lost} failed",
                     lost <= in_flight)
            if lost:
                log("  failed: " + "; ".join(self.stats.failures[failed0:failed][:6]))
            if steady.error_count() > errors0:
                log("  client errors: " + "; ".join(steady.errors[errors0:errors0 + 3]))

    def check_images_survive(self, cluster: Cluster, reader: Client, deployments: dict[str, list[Pod]],
                             uploaded: list[tuple[str, str]]) -> None:
        t0 = time.monotonic()
        crons = {c["metadata"]["name"]: c for c in cluster.of_kind("CronJob")}
        backup, restore = crons.get(f"{RELEASE}-images-backup"), crons.get(f"{RELEASE}-images-restore")
        if backup is None or restore is None:
            self.row("images backup and restore CronJobs", f"CronJob/{RELEASE}-images-backup or -images-restore not rendered", False)
        elif restore["spec"].get("suspend") is not True:
            self.row(f"CronJob/{RELEASE}-images-restore", "not suspended: it would restore on a schedule", False)

        # Every stream, KV bucket and object store keeps the copies the values ask for.
        # (The services' default, 1, when the ConfigMap does not say.)
        want = int(self._configmap_value("NATS_REPLICAS") or "1")
        streams = self.nats.replicas_of_streams()
        short = sorted(n for n, r in streams.items() if r != want)
        self.row("NATS streams, KV buckets and object stores at NATS_REPLICAS",
                 f"{len(streams)} on {len(self.nats.nodes)} nodes, NATS_REPLICAS {want}"
                 + (f"; other: {', '.join(f'{n} R{streams[n]}' for n in short)}" if short else ""),
                 bool(streams) and not short and want == len(self.nats.nodes))

        # The nightly backup, run again now that the traffic has stopped, so it holds every image
        # uploaded (the run of step 4 was taken under traffic): a mirror into the existing folder.
        backed_up = ""
        if backup is not None:
            pod = self.run_job(cluster, backup, "-again", timeout=120)
            backed_up = self._summary(pod)
        urls = image_variants(reader, uploaded)
        before = fetch_digests(reader, urls)
        unreadable = {u: d for u, d in before.items() if len(d) != 64}
        if not urls or unreadable:
            raise RehearsalError(f"images before the NATS faults: {len(urls)} sizes, unreadable: {list(unreadable.items())[:3]}")

        def differing(after: dict[str, str]) -> list[str]:
            return [u for u, d in before.items() if after.get(u) != d]

        def compare(after: dict[str, str]) -> list[str]:
            return [f"{u}: {after.get(u)}" for u in differing(after)]

        # (1) One node loses its volume: the one leading the image store's stream, the worst case.
        # While it is down the other two serve every size once they have elected a new leader
        # (answers in between may be 503: they count as failed in a fault); then it comes back
        # empty and catches up.
        t = time.monotonic()
        node = self.nats.leader_of(lambda name: name.startswith("OBJ_")) or self.nats.nodes[0]
        self.nats.stop_node(node)
        self.nats.lose_store(node)
        _, failed0 = self.stats.snapshot()
        after = fetch_digests(reader, urls)
        while differing(after) and time.monotonic() < t + 20:
            time.sleep(0.5)
            after.update(fetch_digests(reader, differing(after)))
        down_wrong, down_s = compare(after), time.monotonic() - t
        _, failed1 = self.stats.snapshot()
        self.failed_in_faults += failed1 - failed0
        t = time.monotonic()
        self.nats.start_node(node)
        self.nats.wait_healthy()
        held = self.nats.stream_messages(node, lambda name: name.startswith("OBJ_"))
        wrong = compare(fetch_digests(reader, urls))
        self.row("images survive one NATS node's lost volume (R3)",
                 f"{node.name} down: {len(urls) - len(down_wrong)}/{len(urls)} sizes served by the other two within "
                 f"{down_s:.1f} s ({failed1 - failed0} answers failed meanwhile); wiped, back and current in "
                 f"{time.monotonic() - t:.1f} s (holds {held} image-store messages): "
                 f"{len(urls) - len(wrong)}/{len(urls)} byte-identical",
                 not down_wrong and not wrong and held > 0)
        for w in (down_wrong + wrong)[:5]:
            log(f"  differs: {w}")
        if restore is None:
            return

        # (2) Every node loses its volume. The runbook: restart the services (they provision
        # streams, buckets and the object store at start), then a Job from the suspended
        # images-restore CronJob (`kubectl create job --from=cronjob/…`).
        t = time.monotonic()
        self.nats.stop()
        for n in self.nats.nodes:
            self.nats.lose_store(n)
        for n in self.nats.nodes:
            self.nats.start_node(n)
        self.nats.wait_healthy()
        lost_s = time.monotonic() - t
        restart_s, stopping = self.rollout_restart(cluster, deployments, 3)
        t = time.monotonic()
        try:
            pod = self.run_job(cluster, restore, "-manual", timeout=120)
            restored = self._summary(pod)
            ok = "result=ok" in restored
        except RehearsalError as e:
            restored, ok = str(e).splitlines()[0][:150], False
            log(str(e))
        self.row(f"Job from CronJob/{RELEASE}-images-restore", f"exit 0 in {time.monotonic() - t:.1f} s: {restored}" if ok else restored, ok)
        wrong = compare(fetch_digests(reader, urls))
        self.row("images survive every NATS node's lost volume (restore from backup)",
                 f"stores wiped, cluster back in {lost_s:.1f} s, services restarted in {restart_s:.1f} s; "
                 f"{len(urls) - len(wrong)}/{len(urls)} sizes byte-identical (backup: {backed_up})",
                 not wrong)
        for w in wrong[:5]:
            log(f"  differs: {w}")
        # The old pods finish their preStop and grace meanwhile; the run waits for them at its end.
        self.background += stopping
        log(f"images survive: {time.monotonic() - t0:.1f} s")

    @staticmethod
    def _summary(pod: Pod) -> str:
        """A Job's summary line (`… result=ok …`), else its last line."""
        lines = [line.strip() for line in pod.last_log_lines(200).splitlines() if line.strip()]
        summary = [line for line in lines if "result=" in line]
        return (summary or lines or ["(no output)"])[-1][-200:]

    def _configmap_value(self, key: str) -> str | None:
        """A setting of the services' ConfigMap (the one every Deployment takes with envFrom)."""
        for cm in self.cluster.of_kind("ConfigMap"):
            if key in (cm.get("data") or {}):
                return cm["data"][key]
        return None

    def rollout_restart(self, cluster: Cluster, deployments: dict[str, list[Pod]],
                        revision: int) -> tuple[float, list[threading.Thread]]:
        """`kubectl rollout restart deployment`: every Deployment rolled with its strategy, all
        at once, as the Deployment controller does. With maxSurge 1 and maxUnavailable 0 it starts
        the next new pod as soon as one is ready and an old one is being deleted; the old pods'
        preStop and grace run meanwhile. Returns the seconds until every new pod was ready, and
        the old pods' terminations."""
        t = time.monotonic()
        stopping: list[threading.Thread] = []
        errors: list[RehearsalError] = []

        def roll(dep: dict) -> None:
            name = dep["metadata"]["name"]
            new = []
            try:
                for i, old in enumerate(list(deployments[name])):
                    fresh = cluster.start_pod(f"Deployment/{name}", dep["spec"]["template"], f"{name}-r{revision}-{i}")
                    new.append(fresh)
                    self.wait_ready([fresh], 60)
                    th = threading.Thread(target=cluster.terminate, args=(old,), daemon=True)
                    th.start()
                    stopping.append(th)
            except RehearsalError as e:
                errors.append(e)
            deployments[name] = new

        rollers = []
        for dep in cluster.of_kind("Deployment"):
            strategy = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
            if int(strategy.get("maxUnavailable", 0)) != 0 or int(strategy.get("maxSurge", 1)) < 1:
                raise RehearsalError(f"Deployment/{dep['metadata']['name']}: the rehearsal rolls with maxSurge ≥ 1, maxUnavailable 0 only")
            rollers.append(threading.Thread(target=roll, args=(dep,)))
        for th in rollers:
            th.start()
        for th in rollers:
            th.join()
        if errors:
            raise errors[0]
        self.sync_endpoints()
        return time.monotonic() - t, stopping

    def sync_endpoints(self) -> None:
        """The kubelet thread reloads nginx when readiness changes; a step that goes on once pods
        are ready waits for that, as helm --wait waits for the endpoints to be published."""
        if self.cluster.on_endpoints_change:
            self.cluster.on_endpoints_change()

    def wait_all_ready(self, cluster: Cluster, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pods = [p for p in cluster.pods.values() if p.owner.startswith("Deployment/") and not p.terminating and p.exit_code is None]
            if pods and all(p.ready for p in pods):
                self.sync_endpoints()
                return
            time.sleep(0.2)
        raise RehearsalError("not every replica ready again: " + ", ".join(p.name for p in cluster.pods.values() if p.owner.startswith("Deployment/") and not p.ready and not p.terminating))

    def check_nothing_lost(self, admin: Client, steady: SteadyTraffic) -> None:
        """Every order answered 201 exists and got exactly one confirmation e-mail; every image job
        succeeded and its thumbnail is served."""
        for order in steady.orders:
            admin.expect(200, "GET", f"/v1/orders/{order}")
        self.wait_jobs(admin, steady.jobs, "succeeded", timeout=150)
        for item, image in steady.images:
            status, headers, _ = admin.call("GET", f"/v1/items/{item}/images/{image}/thumb")
            if status != 200:
                raise RehearsalError(f"image {image} of item {item}: thumb answered {status}")
        deadline = time.monotonic() + 120
        while True:
            with self.smtp.lock:
                received = list(zip(self.smtp.messages, self.smtp.arrivals))
            copies = {o: [(at, SmtpSink.message_id(m)) for m, at in received if o.encode() in m] for o in steady.orders}
            missing = [o for o, c in copies.items() if not c]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        # The worker's promise (services/worker/src/email.rs): one job per order, its e-mail sent
        # once, and the rare resend after a crash between sending and marking the job done carries
        # the same Message-ID. Two different messages for one order are a doubled order; the same
        # one twice is that resend, shown here with how far apart the copies came.
        doubled = [o for o, c in copies.items() if len({mid for _, mid in c}) > 1]
        resent = [o for o, c in copies.items() if len(c) > 1 and o not in doubled]
        for order in doubled + resent:
            seen = ", ".join(f"{mid} at +{at - self.t0:.1f} s" for at, mid in copies[order])
            print(f"rehearse: order {order}: {len(copies[order])} e-mails: {seen}", flush=True)
        self.row("nothing lost or doubled (upgrade and faults)",
                 f"{len(steady.orders)} orders answered 201: all exist, {len(missing)} without and {len(doubled)} with "
                 f"more than one e-mail ({len(resent)} resent once more with the same Message-ID after a fault); "
                 f"{len(steady.jobs)} image jobs succeeded, every thumbnail served",
                 not missing and not doubled)

    def check_down_alert(self, cluster: Cluster, mon: Monitoring) -> None:
        name = f"{RELEASE}-worker"
        victims = [p for p in cluster.pods.values() if p.owner == f"Deployment/{name}" and p.exit_code is None and not p.terminating]
        for pod in victims:
            cluster.kill(pod)
        cluster.on_endpoints_change()
        deadline = time.monotonic() + 20 * self._interval_s() + 30
        seen = []
        while time.monotonic() < deadline:
            seen = [a for a in mon.alerts() if a["state"] in ("pending", "firing") and "worker" in json.dumps(a["labels"]) and ("Down" in a["labels"]["alertname"] or "Absent" in a["labels"]["alertname"])]
            if seen:
                break
            time.sleep(1)
        self.row("every worker stopped → its down alert",
                 ", ".join(f"{a['labels']['alertname']} {a['state']}" for a in seen) or "no alert", bool(seen))

    def teardown(self) -> None:
        for part in ("cluster", "edge", "mon"):
            obj = getattr(self, part, None)
            if obj is None:
                continue
            try:
                {"cluster": lambda o: o.shutdown(), "edge": lambda o: o.stop(), "mon": lambda o: o.stop()}[part](obj)
            except Exception as e:  # noqa: BLE001 — teardown goes on whatever broke
                log(f"teardown of {part}: {e}")
        if getattr(self, "pg", None):
            self.pg.stop()
        if getattr(self, "nats", None):
            self.nats.stop()

    def table(self) -> str:
        width = max(len(r[0]) for r in self.rows) if self.rows else 10
        lines = [f"{'check':<{width}}  result", f"{'-' * width}  ------"]
        lines += [f"{c:<{width}}  {s:<6}  {r}" for c, r, s in self.rows]
        lines.append(f"total {time.monotonic() - self.t0:.0f} s")
        return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--chart", required=True)
    p.add_argument("--values", action="append", default=[])
    p.add_argument("--helm", required=True)
    p.add_argument("--nginx", default="nginx")
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--nats-server", required=True, help="the nats-server binary (scripts/nats.sh bin)")
    p.add_argument("--nats-port", type=int, required=True, help="the first node's client port")
    p.add_argument("--repo", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--scrape-interval", default="2s")
    p.add_argument("--chaos", action="store_true", help="also restart PostgreSQL and NATS under traffic")
    args = p.parse_args()
    r = Rehearsal(args)
    # A CI time-out or Ctrl-C still tears everything down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 0
    try:
        r.run()
    except (RehearsalError, AssertionError) as e:
        r.row("rehearsal", str(e).splitlines()[0][:200], False)
        print(f"\nrehearse: FAILED: {e}", file=sys.stderr, flush=True)
        code = 1
    except Exception:  # noqa: BLE001 — a bug in the rehearsal itself: say where, then tear down
        traceback.print_exc()
        r.row("rehearsal", "the rehearsal itself failed (traceback above)", False)
        code = 1
    finally:
        r.teardown()
    print("\n" + r.table(), flush=True)
    for report in r.reports:
        print("\n" + report, end="", flush=True)
    if r.failed:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
