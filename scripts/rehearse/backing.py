"""The backing services an operator brings: a PostgreSQL cluster of the rehearsal's own (password
authentication for TCP clients, so the services' URLs really need their passwords, and restartable
without touching the machine's own PostgreSQL) with a streaming replica (a hot standby, what
catalog-order's DATABASE_READ_URL names), and a three-node NATS JetStream cluster."""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from cluster import RehearsalError, record_pid


def _pg_bindir() -> str:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
    candidates = [out.stdout.strip()] if out.returncode == 0 else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for d in candidates:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    raise RehearsalError("initdb not found: install the PostgreSQL server (Debian: apt install postgresql)")


class Postgres:
    def __init__(self, workdir: str, port: int):
        self.bindir = _pg_bindir()
        self.dir = os.path.join(workdir, "postgres")
        self.port = port
        self.password = secrets.token_urlsafe(24)
        self.admin_url = f"postgres://postgres:{self.password}@127.0.0.1:{port}/postgres"
        # initdb refuses to run as root: the cluster belongs to the postgres user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bindir, argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if check and out.returncode != 0:
            raise RehearsalError(f"{argv[0]} failed: {out.stdout}{out.stderr}")
        return out

    def start(self) -> None:
        os.makedirs(self.dir)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
        os.remove(pwfile)
        self._ctl("start")

    def _ctl(self, action: str, data: str = "data", port: int | None = None) -> None:
        port = port or self.port
        opts = f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", f"{self.dir}/{data}", "-l", f"{self.dir}/{data}.log", "-o", opts, "-w", "-m", "fast", action)

    def start_standby(self, port: int) -> None:
        """A streaming replica of the whole cluster (pg_basebackup -R over the replication
        connection initdb's pg_hba allows, with the superuser's password), started on `port`."""
        self.standby_port = port
        source = f"postgres://postgres:{self.password}@127.0.0.1:{self.port}/postgres"
        self._run("pg_basebackup", "-d", source, "-D", f"{self.dir}/standby", "-R", "-X", "stream", "-c", "fast")
        self._ctl("start", "standby", port)

    def kill_standby(self) -> None:
        """SIGKILL the standby's postmaster (a node lost), then start it again: it catches up."""
        with open(f"{self.dir}/standby/postmaster.pid") as f:
            os.kill(int(f.readline()), 9)
        deadline = time.monotonic() + 30
        while _port_open(self.standby_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Its orphaned backends notice the postmaster's death and exit; until they have, the old
        # shared memory is in use and a new postmaster refuses to start.
        for attempt in range(20):
            try:
                self._ctl("start", "standby", self.standby_port)
                return
            except RehearsalError:
                if attempt == 19:
                    raise
                time.sleep(0.5)

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        for data in ("standby", "data"):
            if os.path.exists(f"{self.dir}/{data}/postmaster.pid"):
                self._run("pg_ctl", "-D", f"{self.dir}/{data}", "-m", "immediate", "-w", "stop", check=False)

    def psql(self, sql: str, db: str = "postgres") -> str:
        url = self.admin_url.rsplit("/", 1)[0] + "/" + db
        out = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise RehearsalError(f"psql: {sql[:80]}: {out.stderr}")
        return out.stdout


class NatsNode:
    def __init__(self, index: int, root: str, client: int, route: int, monitor: int):
        self.name = f"nats-{index}"
        self.dir = os.path.join(root, self.name)
        self.store = os.path.join(self.dir, "store")
        self.client_port, self.route_port, self.monitor_port = client, route, monitor
        self.url = f"nats://127.0.0.1:{client}"
        self.monitor_url = f"http://127.0.0.1:{monitor}"
        self.proc: subprocess.Popen | None = None


class NatsCluster:
    """Three nats-servers forming one JetStream cluster, as a production NATS (the NATS chart's
    StatefulSet with three replicas) would: each node its own store folder (its volume), client,
    route and monitoring ports; routes between all three. The Secret's nats-url lists every node,
    so a client reconnects to another node when its own goes away.

    Node i listens for clients on BASE+i, for routes on BASE+2000+i and serves monitoring
    (/healthz, /jsz, /varz) on BASE+4000+i, all on 127.0.0.1.

    Each node's JetStream file storage is stated (STORAGE, its volume's size) rather than left to
    nats-server's default (75 % of the disk's free space), so the rehearsal does not depend on the
    machine's disk: a stream with a size limit (the image store's NATS_IMAGES_MAX_BYTES) reserves
    that much on each of its nodes, and placement fails ("no suitable peers for placement,
    insufficient storage") where a node has less. Only what is written takes disk space."""

    SIZE = 3
    STORAGE = "20GiB"

    def __init__(self, binary: str, workdir: str, base_port: int, size: int = SIZE):
        self.binary = binary
        self.workdir = workdir
        self.root = os.path.join(workdir, "nats")
        self.nodes = [NatsNode(i, self.root, base_port + i, base_port + 2000 + i, base_port + 4000 + i) for i in range(size)]
        self.url = ",".join(n.url for n in self.nodes)
        # What a NATS Service in front of the nodes' monitoring ports gives (e.g. KEDA's endpoint).
        self.monitoring_endpoint = f"127.0.0.1:{self.nodes[0].monitor_port}"

    def _config(self, node: NatsNode) -> str:
        routes = "\n".join(f"    nats-route://127.0.0.1:{n.route_port}" for n in self.nodes)
        return f"""server_name: {node.name}
listen: 127.0.0.1:{node.client_port}
http: 127.0.0.1:{node.monitor_port}
jetstream {{
  store_dir: "{node.store}"
  max_file_store: {self.STORAGE}
}}
cluster {{
  name: rehearsal
  listen: 127.0.0.1:{node.route_port}
  routes: [
{routes}
  ]
}}
"""

    def start(self) -> None:
        for node in self.nodes:
            for port in (node.client_port, node.route_port, node.monitor_port):
                if _port_open(port):
                    raise RehearsalError(f"NATS {node.name}: 127.0.0.1:{port} is taken (REHEARSE_NATS_PORT picks another base)")
        for node in self.nodes:
            self.start_node(node)
        self.wait_healthy()

    def start_node(self, node: NatsNode) -> None:
        os.makedirs(node.store, exist_ok=True)
        conf = os.path.join(node.dir, "nats.conf")
        with open(conf, "w") as f:
            f.write(self._config(node))
        log = open(os.path.join(node.dir, "nats.log"), "ab")
        node.proc = subprocess.Popen([self.binary, "-c", conf], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        record_pid(self.workdir, node.proc.pid)

    def stop_node(self, node: NatsNode, timeout: float = 30) -> None:
        """SIGTERM (a pod's deletion) and wait; JetStream flushes its store before it exits."""
        if node.proc is None or node.proc.poll() is not None:
            return
        node.proc.terminate()
        try:
            node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()

    def lose_store(self, node: NatsNode) -> None:
        """The node's volume is gone: it must be stopped; it starts again with an empty folder."""
        if node.proc is not None and node.proc.poll() is None:
            raise RehearsalError(f"NATS {node.name} is running; stop it before deleting its store")
        shutil.rmtree(node.store, ignore_errors=True)

    def _get(self, node: NatsNode, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(node.monitor_url + path, timeout=2) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}
        except (OSError, ValueError):
            return 0, {}

    def healthy(self, node: NatsNode) -> tuple[bool, str]:
        """/healthz answers ok once JetStream on the node is current: the meta group has a leader
        and every stream and consumer this node holds has caught up."""
        if node.proc is None or node.proc.poll() is not None:
            return False, "not running"
        status, body = self._get(node, "/healthz")
        if status != 200:
            return False, body.get("error") or f"/healthz {status or 'unreachable'}"
        _, jsz = self._get(node, "/jsz")
        meta = jsz.get("meta_cluster") or {}
        if not meta.get("leader"):
            return False, "no JetStream meta leader"
        if int(meta.get("cluster_size", 0)) != len(self.nodes):
            return False, f"meta group of {meta.get('cluster_size')}"
        return True, "ok"

    def wait_healthy(self, nodes: list[NatsNode] | None = None, timeout: float = 60) -> float:
        t = time.monotonic()
        deadline = t + timeout
        why = {}
        while time.monotonic() < deadline:
            why = {n.name: self.healthy(n) for n in (nodes or self.nodes)}
            if all(ok for ok, _ in why.values()):
                return time.monotonic() - t
            for n in nodes or self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise RehearsalError(f"NATS {n.name} exited {n.proc.returncode}:\n{self.last_log_lines(n)}")
            time.sleep(0.2)
        raise RehearsalError("NATS cluster not healthy in time: " + "; ".join(f"{k}: {v[1]}" for k, v in why.items()))

    def last_log_lines(self, node: NatsNode, n: int = 15) -> str:
        try:
            with open(os.path.join(node.dir, "nats.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def replicas_of_streams(self) -> dict[str, int]:
        """Every stream's configured replica count (KV buckets and object stores are streams)."""
        out: dict[str, int] = {}
        for node in self.nodes:
            for st in self._streams(node):
                out[st["name"]] = int((st.get("config") or {}).get("num_replicas", 1))
        return out

    def _streams(self, node: NatsNode) -> list[dict]:
        """The streams this node holds a copy of, with their config, state and cluster info."""
        status, jsz = self._get(node, "/jsz?accounts=true&streams=true&config=true")
        if status != 200:
            return []
        return [st for acc in jsz.get("account_details") or [] for st in acc.get("stream_detail") or []]

    def leader_of(self, which) -> NatsNode | None:
        """The node leading the first stream whose name satisfies `which`."""
        for node in self.nodes:
            for st in self._streams(node):
                if which(st["name"]):
                    leader = (st.get("cluster") or {}).get("leader")
                    return next((n for n in self.nodes if n.name == leader), None)
        return None

    def stream_messages(self, node: NatsNode, which) -> int:
        """Messages in the copies this node holds of the streams whose names satisfy `which`."""
        return sum(int((st.get("state") or {}).get("messages", 0)) for st in self._streams(node) if which(st["name"]))

    def wait_provisioned(self, timeout: float = 60) -> float:
        """Wait until the services' JetStream topology exists: an object store (provisioned last,
        after the streams, consumers and KV buckets) and a leader for every stream."""
        t = time.monotonic()
        streams: dict[str, dict] = {}
        while time.monotonic() < t + timeout:
            streams = {st["name"]: st for node in self.nodes for st in self._streams(node)}
            if any(name.startswith("OBJ_") for name in streams) and all(
                    (st.get("cluster") or {}).get("leader") for st in streams.values()):
                return time.monotonic() - t
            time.sleep(0.2)
        raise RehearsalError(f"the services' JetStream topology was not provisioned in {timeout:.0f} s; streams: {sorted(streams)}")

    def restart(self) -> None:
        """The whole cluster stopped and started again, data kept (`make chaos`)."""
        self.stop()
        for node in self.nodes:
            self.start_node(node)
        self.wait_healthy()

    def restart_node(self, index: int = 0) -> None:
        """One node stopped and started again, data kept (`make chaos`): R3 keeps serving."""
        node = self.nodes[index]
        self.stop_node(node)
        self.start_node(node)
        self.wait_healthy()

    def kill_node(self, index: int = 0) -> None:
        """SIGKILL one node (its machine lost; nothing flushed), then start it again on its
        volume: R3 keeps serving meanwhile, clients move to another node of the nats-url."""
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()
        self.start_node(node)
        self.wait_healthy()

    def stop(self) -> None:
        threads = [threading.Thread(target=self.stop_node, args=(n,)) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
