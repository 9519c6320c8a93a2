"""A real Prometheus configured the way Prometheus Operator would from the rendered objects.

ServiceMonitor → one scrape job per endpoint entry, over every Pod behind each selected Service
(ready or not, as the endpoints role gives them), with the target labels the Operator derives:
`namespace`, `service`, `pod`, `container`, `endpoint`, `instance`, `job` (the Service name, or
the value of its `jobLabel` label), and `honor_labels` as rendered. PrometheusRule → a rule file.
Scrape and evaluation intervals are shortened (REHEARSAL_SCRAPE_INTERVAL) so the rehearsal sees
rates within a minute; alert `for:` clauses are checked by promtool's unit tests, so here an alert
whose expression holds counts as firing when it is pending or firing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request

import yaml

from cluster import Cluster, RehearsalError, labels_match, record_pid


class Monitoring:
    def __init__(self, cluster: Cluster, workdir: str, port: int, interval: str):
        self.cluster = cluster
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        self.port = port
        self.interval = interval
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{port}"

    def _targets_file(self, index: int) -> str:
        return os.path.join(self.dir, f"targets-{index}.json")

    def write_config(self) -> None:
        c = self.cluster
        jobs = []
        index = 0
        for sm in c.of_kind("ServiceMonitor"):
            for i, ep in enumerate(sm["spec"]["endpoints"]):
                jobs.append({
                    "job_name": f"serviceMonitor/{c.namespace}/{sm['metadata']['name']}/{i}",
                    "honor_labels": bool(ep.get("honorLabels", False)),
                    "metrics_path": ep.get("path", "/metrics"),
                    "scheme": ep.get("scheme", "http"),
                    "scrape_interval": self.interval,
                    "file_sd_configs": [{"files": [self._targets_file(index)], "refresh_interval": "2s"}],
                })
                index += 1
        rule_files = []
        for pr in c.of_kind("PrometheusRule"):
            path = os.path.join(self.dir, f"{pr['metadata']['name']}.rules.yaml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
            check = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
            if check.returncode != 0:
                raise RehearsalError(f"PrometheusRule/{pr['metadata']['name']}: promtool refuses it:\n{check.stdout}{check.stderr}")
            rule_files.append(path)
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": rule_files,
            "scrape_configs": jobs,
        }
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            yaml.safe_dump(config, f)
        self.update_targets()

    def update_targets(self) -> None:
        """The endpoints behind each ServiceMonitor, with the Operator's target labels."""
        c = self.cluster
        index = 0
        for sm in c.of_kind("ServiceMonitor"):
            selector = sm["spec"]["selector"].get("matchLabels", {})
            job_label = sm["spec"].get("jobLabel")
            for ep in sm["spec"]["endpoints"]:
                groups = []
                for svc in c.of_kind("Service"):
                    meta = svc["metadata"]
                    if not labels_match(selector, meta.get("labels", {})):
                        continue
                    port = next((p for p in svc["spec"]["ports"] if p.get("name") == ep.get("port")), None)
                    if port is None:
                        continue
                    job = meta.get("labels", {}).get(job_label, meta["name"]) if job_label else meta["name"]
                    for pod, target in c.service_endpoints(svc, port, ready_only=False):
                        groups.append({
                            "targets": [f"{pod.ip}:{target}"],
                            "labels": {
                                "namespace": c.namespace,
                                "service": meta["name"],
                                "pod": pod.name,
                                "container": pod.container["name"],
                                "endpoint": ep.get("port"),
                                "job": job,
                            },
                        })
                path = self._targets_file(index)
                with open(path + ".new", "w") as f:
                    json.dump(groups, f)
                os.replace(path + ".new", path)
                index += 1

    def start(self) -> None:
        self.write_config()
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={self.dir}/prometheus.yml",
                f"--storage.tsdb.path={self.dir}/data",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "prometheus.log"), "ab"),
            start_new_session=True,
        )
        record_pid(os.path.dirname(self.dir), self.proc.pid)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/-/ready", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise RehearsalError("prometheus did not start:\n" + open(os.path.join(self.dir, "prometheus.log")).read()[-2000:])

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RehearsalError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def wait_scraped(self, timeout: float) -> None:
        """Until every running pod is an up target."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.api("targets")["activeTargets"]
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(1)
        bad = [(t["labels"].get("pod"), t["health"], t.get("lastError")) for t in self.api("targets")["activeTargets"] if t["health"] != "up"]
        raise RehearsalError(f"prometheus targets not up: {bad}")

    def rules(self) -> list[dict]:
        return [r for g in self.api("rules")["groups"] for r in g["rules"]]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def dashboard_queries(cluster: Cluster) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every panel target in the rendered dashboard ConfigMaps,
    with Grafana's variables given the values a person looking at this release would pick."""
    out = []
    for cm in cluster.of_kind("ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            if not key.endswith(".json"):
                continue
            dash = json.loads(text)
            variables = {}
            for var in (dash.get("templating") or {}).get("list", []):
                name = var.get("name")
                if name == "namespace":
                    variables[name] = cluster.namespace
                elif var.get("type") == "datasource":
                    variables[name] = ""
                else:
                    variables[name] = ".*"
            panels = list(dash.get("panels", []))
            while panels:
                panel = panels.pop(0)
                panels.extend(panel.get("panels", []))
                for target in panel.get("targets", []):
                    expr = target.get("expr")
                    if not expr:
                        continue
                    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "10m")
                    for name, value in variables.items():
                        expr = re.sub(r"\$\{" + re.escape(name) + r"(?::\w+)?\}|\$" + re.escape(name) + r"\b", value, expr)
                    out.append((dash.get("title", key), panel.get("title", "?"), expr))
    return out
