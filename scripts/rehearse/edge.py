"""nginx as ingress-nginx (from the rendered Ingress) and as kube-proxy (for each Service).

ingress-nginx proxies straight to the ready Pods of a Service (round robin), sets
X-Forwarded-For / X-Real-IP / X-Forwarded-Proto / X-Forwarded-Host / X-Forwarded-Port /
X-Scheme / X-Request-ID, maps its annotations to nginx directives, and retries `error timeout`
on another upstream (never a non-idempotent request that was sent). Endpoint changes reload
nginx gracefully, so requests in flight finish on the worker that took them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from cluster import Cluster, RehearsalError, record_pid

ANNOTATION = "nginx.ingress.kubernetes.io/"


def _seconds(value: str) -> str:
    value = str(value)
    return value if value[-1:].isalpha() else value + "s"


class Edge:
    def __init__(self, cluster: Cluster, workdir: str, nginx: str, ingress_addr: tuple[str, int], tls: tuple[str, str] | None):
        self.cluster = cluster
        self.nginx = nginx
        self.dir = os.path.join(workdir, "nginx")
        # nginx's workers (not root) buffer large request bodies here.
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(os.path.join(self.dir, "tmp"), 0o777)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.ingress_addr = ingress_addr
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.reloads = 0

    def upstream_name(self, service: str, port: str, role: str) -> str:
        # The ingress and kube-proxy keep upstreams (and so keep-alive pools) of their own: a
        # connection the ingress opened from its address must never carry kube-proxy's traffic,
        # nor the other way round.
        return f"{role}-{service}-{port}".replace(".", "_")

    def render(self) -> str:
        c = self.cluster
        upstreams = []
        for svc in c.of_kind("Service"):
            for port in svc["spec"]["ports"]:
                eps = c.service_endpoints(svc, port)
                servers = [f"    server {p.ip}:{n} max_fails=0;" for p, n in eps] or ["    server 127.0.0.1:9 down;"]
                for role in ("ingress", "service"):
                    upstreams.append(
                        f"  upstream {self.upstream_name(svc['metadata']['name'], port.get('name', str(port['port'])), role)} {{\n"
                        + "\n".join(servers)
                        + "\n    keepalive 32;\n  }"
                    )
        servers = [self._ingress_server(ing) for ing in c.of_kind("Ingress")]
        # kube-proxy: each Service's virtual address and ports lead to its ready endpoints.
        for svc in c.of_kind("Service"):
            name = svc["metadata"]["name"]
            for port in svc["spec"]["ports"]:
                up = self.upstream_name(name, port.get("name", str(port["port"])), "service")
                servers.append(
                    f"  server {{\n    listen {c.service_ips[name]}:{port['port']};\n"
                    f"    location / {{ proxy_pass http://{up}; proxy_http_version 1.1; "
                    f"proxy_set_header Connection \"\"; proxy_set_header Host $http_host; }}\n  }}"
                )
        d = self.dir
        return f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 2048; }}
http {{
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  log_format rehearsal '$remote_addr "$request" $status $upstream_addr $request_time "$http_x_forwarded_for"';
  access_log {d}/access.log rehearsal;
  # ingress-nginx: the client's X-Request-ID, or one it makes.
  map $http_x_request_id $req_id {{ default $http_x_request_id; "" $request_id; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
{chr(10).join(upstreams)}
{chr(10).join(servers)}
}}
"""

    def _ingress_server(self, ing: dict) -> str:
        ann = ing["metadata"].get("annotations") or {}
        body = ann.get(ANNOTATION + "proxy-body-size", "1m")
        read = _seconds(ann.get(ANNOTATION + "proxy-read-timeout", "60"))
        send = _seconds(ann.get(ANNOTATION + "proxy-send-timeout", "60"))
        connect = _seconds(ann.get(ANNOTATION + "proxy-connect-timeout", "5"))
        host, port = self.ingress_addr
        listen = f"listen {host}:{port}"
        tls = ""
        if ing["spec"].get("tls"):
            if not self.tls:
                raise RehearsalError(f"Ingress/{ing['metadata']['name']}: TLS is rendered but no certificate was made")
            listen += " ssl"
            tls = f"    ssl_certificate {self.tls[0]};\n    ssl_certificate_key {self.tls[1]};\n"
        locations = []
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                up = self.upstream_name(backend["name"], str(backend["port"].get("name", backend["port"].get("number"))), "ingress")
                proxy = f"""      proxy_pass http://{up};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $req_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Scheme $scheme;
      proxy_connect_timeout {connect};
      proxy_send_timeout {send};
      proxy_read_timeout {read};
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries 3;
      # The controller's own address is what the services see as the peer.
      proxy_bind {host};"""
                path = p["path"]
                if p.get("pathType") == "Exact":
                    locations.append(f"    location = {path} {{\n{proxy}\n    }}")
                elif path == "/":
                    locations.append(f"    location / {{\n{proxy}\n    }}")
                else:
                    # Prefix matches whole path elements: /v1/auth and /v1/auth/…, not /v1/authx.
                    trimmed = path.rstrip("/")
                    locations.append(f"    location = {trimmed} {{\n{proxy}\n    }}")
                    locations.append(f"    location {trimmed}/ {{\n{proxy}\n    }}")
        return (
            f"  server {{\n    {listen};\n    server_name {' '.join(r['host'] for r in ing['spec']['rules'])};\n"
            f"{tls}    client_max_body_size {body};\n" + "\n".join(locations) + "\n  }"
        )

    def start(self) -> None:
        self._write()
        self.proc = subprocess.Popen(
            [self.nginx, "-p", self.dir, "-c", self.conf],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "stderr.log"), "ab"),
            start_new_session=True,
        )
        record_pid(os.path.dirname(self.dir), self.proc.pid)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RehearsalError("nginx did not start: " + open(os.path.join(self.dir, "error.log")).read()[-2000:])

    def _write(self) -> None:
        with open(self.conf + ".new", "w") as f:
            f.write(self.render())
        test = subprocess.run([self.nginx, "-t", "-q", "-p", self.dir, "-c", self.conf + ".new"], capture_output=True, text=True)
        if test.returncode != 0:
            raise RehearsalError("the rendered nginx configuration is invalid:\n" + test.stderr)
        os.replace(self.conf + ".new", self.conf)

    def reload(self) -> None:
        """Endpoints changed: write the upstreams again and reload gracefully (SIGHUP)."""
        with self.lock:
            self._write()
            if self.proc and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGHUP)
                self.reloads += 1
        # The new workers take over within a few milliseconds.
        time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
