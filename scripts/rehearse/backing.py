"""The backing services an operator brings: a PostgreSQL cluster of the rehearsal's own (password
authentication for TCP clients, so the services' URLs really need their passwords, and restartable
without touching the machine's own PostgreSQL) and the NATS server rehearse.sh started."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import subprocess

from cluster import RehearsalError


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

    def _ctl(self, action: str) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/postgres.log", "-o", opts, "-w", "-m", "fast", action)

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        if os.path.exists(f"{self.dir}/data/postmaster.pid"):
            self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop", check=False)

    def psql(self, sql: str, db: str = "postgres") -> str:
        url = self.admin_url.rsplit("/", 1)[0] + "/" + db
        out = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True)
        if out.returncode != 0:
            raise RehearsalError(f"psql: {sql[:80]}: {out.stderr}")
        return out.stdout


class Nats:
    """The NATS server of rehearse.sh (scripts/nats.sh on its own port, JetStream on disk)."""

    def __init__(self, repo: str, port: int):
        self.repo = repo
        self.port = port
        self.url = f"nats://127.0.0.1:{port}"

    def restart(self) -> None:
        for action in ("stop", "start"):
            out = subprocess.run(["bash", "scripts/nats.sh", action, str(self.port)], cwd=self.repo, capture_output=True, text=True)
            if out.returncode != 0:
                raise RehearsalError(f"nats.sh {action}: {out.stderr}")
