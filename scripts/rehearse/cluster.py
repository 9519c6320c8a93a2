"""A one-machine stand-in for what a Kubernetes cluster does with the chart's rendered manifests.

It reads the rendered YAML and runs each Pod's container as a local process the way the kubelet
would: arguments, `env` (value, secretKeyRef, configMapKeyRef, fieldRef), `envFrom`, Secret,
ConfigMap, projected and emptyDir volumes, the pod security context's user and groups, probes,
preStop and the grace period. What a pod's own network namespace and the cluster's DNS give a
container is imitated by three translations, and only these (docs/rehearsal.md):

- mount paths are rebased under the pod's folder (`/run/secrets/x` → `<pod>/run/secrets/x`);
- a pod has its own loopback address (127.0.1.N) instead of its own network namespace, so an
  address `0.0.0.0:PORT` the container binds becomes `127.0.1.N:PORT`;
- a Service's DNS name (`name`, `name.ns`, `name.ns.svc[.cluster.local]`) becomes its virtual
  address (127.0.2.N), where the rehearsal's nginx plays kube-proxy for the ready endpoints.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import yaml


class RehearsalError(Exception):
    """A step failed; the message names the manifest and container."""


def load_manifests(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def record_pid(workdir: str, pid: int) -> None:
    """Every process group the rehearsal starts, so rehearse.sh can end them whatever happens."""
    with open(os.path.join(workdir, "pids"), "a") as f:
        f.write(f"{pid}\n")


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def hook_kinds(obj: dict) -> set[str]:
    hooks = obj.get("metadata", {}).get("annotations", {}).get("helm.sh/hook", "")
    return {h.strip() for h in hooks.split(",") if h.strip()}


def hook_weight(obj: dict) -> int:
    return int(obj.get("metadata", {}).get("annotations", {}).get("helm.sh/hook-weight", "0"))


@dataclass
class Pod:
    name: str
    owner: str  # "Deployment/storefront-auth", "Job/storefront-auth-migrate", …
    spec: dict
    labels: dict
    ip: str
    root: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    started_ok: bool = False
    ready: bool = False
    terminating: bool = False
    restarts: int = 0
    exit_code: int | None = None
    probe_due: dict = field(default_factory=dict)
    probe_failures: dict = field(default_factory=dict)

    @property
    def container(self) -> dict:
        return self.spec["containers"][0]

    def log_path(self) -> str:
        return os.path.join(self.root, "container.log")

    def last_log_lines(self, n: int = 15) -> str:
        try:
            with open(self.log_path(), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def port(self, ref) -> int:
        """A probe's or Service's port: a number, or the name of one of the container's ports."""
        if isinstance(ref, int):
            return ref
        for p in self.container.get("ports", []):
            if p.get("name") == ref:
                return int(p["containerPort"])
        if str(ref).isdigit():
            return int(ref)
        raise RehearsalError(f"{self.owner}: container {self.container['name']} has no port {ref!r}")


class Cluster:
    """Objects of one namespace and the pods running them."""

    def __init__(self, workdir: str, namespace: str, images: dict[str, list[str]], base_env: dict):
        self.workdir = workdir
        self.namespace = namespace
        # image name (last path element, no tag) → the command that stands in for its entrypoint.
        self.images = images
        self.base_env = base_env
        self.objects: dict[tuple[str, str], dict] = {}
        self.pods: dict[str, Pod] = {}
        self.service_ips: dict[str, str] = {}
        self.lock = threading.RLock()
        self.next_pod_ip = 1
        self.endpoints_changed = threading.Event()
        self.on_endpoints_change = None  # called with no arguments, from the kubelet thread
        self.stopping = threading.Event()
        self.kubelet = threading.Thread(target=self._kubelet_loop, name="kubelet", daemon=True)
        self.kubelet.start()

    # --- objects ---------------------------------------------------------------------------------

    def apply(self, obj: dict) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "ConfigMap":
            for key, value in (obj.get("data") or {}).items():
                if not isinstance(value, str):
                    raise RehearsalError(
                        f"ConfigMap/{name}: data.{key} is {type(value).__name__} {value!r}; the API "
                        "server accepts only strings (quote it in the template)"
                    )
        if kind == "Service" and name not in self.service_ips:
            self.service_ips[name] = f"127.0.2.{len(self.service_ips) + 1}"
        with self.lock:
            self.objects[(kind, name)] = obj

    def get(self, kind: str, name: str) -> dict:
        try:
            return self.objects[(kind, name)]
        except KeyError:
            raise RehearsalError(f"{kind}/{name} is referenced but was not rendered or created") from None

    def of_kind(self, kind: str) -> list[dict]:
        return [o for (k, _), o in sorted(self.objects.items()) if k == kind]

    def secret_data(self, name: str) -> dict[str, bytes]:
        secret = self.get("Secret", name)
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
        return data

    def configmap_data(self, name: str) -> dict[str, bytes]:
        cm = self.get("ConfigMap", name)
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    # --- the kubelet: volumes, environment, processes --------------------------------------------

    def start_pod(self, owner: str, template: dict, name: str) -> Pod:
        with self.lock:
            ip = f"127.0.1.{self.next_pod_ip}"
            self.next_pod_ip += 1
        root = os.path.join(self.workdir, "pods", name)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root, mode=0o755)
        pod = Pod(
            name=name,
            owner=owner,
            spec=template["spec"],
            labels=template.get("metadata", {}).get("labels", {}),
            ip=ip,
            root=root,
        )
        self._mount_volumes(pod)
        with self.lock:
            self.pods[name] = pod
        self._run(pod)
        return pod

    def _mount_volumes(self, pod: Pod) -> None:
        sc = pod.spec.get("securityContext") or {}
        fs_group = sc.get("fsGroup")
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        for mount in pod.container.get("volumeMounts", []):
            vol = volumes.get(mount["name"])
            if vol is None:
                raise RehearsalError(f"{pod.owner}: volumeMount {mount['name']} has no volume")
            target = self.host_path(pod, mount["mountPath"])
            os.makedirs(target, exist_ok=True)
            files: dict[str, tuple[bytes, int]] = {}
            if "emptyDir" in vol:
                os.chmod(target, 0o777)
            elif "persistentVolumeClaim" in vol:
                # One folder per claim, shared by every pod that mounts it.
                claim = os.path.join(self.workdir, "volumes", vol["persistentVolumeClaim"]["claimName"])
                os.makedirs(claim, mode=0o777, exist_ok=True)
                os.chmod(claim, 0o777)
                os.rmdir(target)
                os.symlink(claim, target)
            elif "secret" in vol:
                src = vol["secret"]
                files = self._projection(pod, "Secret", src["secretName"], src, src.get("defaultMode", 0o644))
            elif "configMap" in vol:
                src = vol["configMap"]
                files = self._projection(pod, "ConfigMap", src["name"], src, src.get("defaultMode", 0o644))
            elif "projected" in vol:
                mode = vol["projected"].get("defaultMode", 0o644)
                for source in vol["projected"]["sources"]:
                    if "secret" in source:
                        files.update(self._projection(pod, "Secret", source["secret"]["name"], source["secret"], mode))
                    elif "configMap" in source:
                        files.update(self._projection(pod, "ConfigMap", source["configMap"]["name"], source["configMap"], mode))
                    else:
                        raise RehearsalError(f"{pod.owner}: projected source {list(source)} is not imitated")
            else:
                raise RehearsalError(f"{pod.owner}: volume {vol['name']} ({list(vol)}) is not imitated")
            for rel, (content, mode) in files.items():
                path = os.path.join(target, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(content)
                os.chmod(path, mode)
                if os.geteuid() == 0 and fs_group is not None:
                    os.chown(path, 0, int(fs_group))

    def _projection(self, pod: Pod, kind: str, name: str, src: dict, mode: int) -> dict:
        try:
            data = self.secret_data(name) if kind == "Secret" else self.configmap_data(name)
        except RehearsalError:
            if src.get("optional"):
                return {}
            raise RehearsalError(f"{pod.owner}: {kind}/{name} does not exist (the pod would stay in ContainerCreating)") from None
        if "items" not in src:
            return {k: (v, mode) for k, v in data.items()}
        files = {}
        for item in src["items"]:
            if item["key"] not in data:
                raise RehearsalError(f"{pod.owner}: {kind}/{name} has no key {item['key']!r} (mount fails)")
            files[item["path"]] = (data[item["key"]], item.get("mode", mode))
        return files

    def host_path(self, pod: Pod, path: str) -> str:
        return os.path.join(pod.root, path.lstrip("/"))

    def _translate(self, pod: Pod, value: str) -> str:
        """The three translations of the module's doc, applied to an env value or an argument."""
        # One pass, longest mount first, so a rebased path is never rebased again.
        mounts = sorted((m["mountPath"].rstrip("/") for m in pod.container.get("volumeMounts", [])), key=len, reverse=True)
        if mounts:
            value = re.sub(
                r"(?<![\w/.-])(" + "|".join(map(re.escape, mounts)) + r")(?=/|$|\s|\"|')",
                lambda m: self.host_path(pod, m.group(1)),
                value,
            )
        value = re.sub(r"\b0\.0\.0\.0:(\d+)", lambda m: f"{pod.ip}:{m.group(1)}", value)
        for svc, vip in self.service_ips.items():
            ns = self.namespace
            value = re.sub(
                r"(?<=//)" + re.escape(svc) + rf"(?:\.{re.escape(ns)}(?:\.svc(?:\.cluster\.local)?)?)?(?=[:/]|$)",
                vip,
                value,
            )
        return value

    def pod_env(self, pod: Pod) -> dict[str, str]:
        c = pod.container
        env: dict[str, str] = {}
        for src in c.get("envFrom", []):
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = self.configmap_data(src["configMapRef"]["name"])
            else:
                data = self.secret_data(src["secretRef"]["name"])
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for e in c.get("env", []):
            name = e["name"]
            if "value" in e:
                if not isinstance(e["value"], str):
                    raise RehearsalError(
                        f"{pod.owner}: env {name} is {type(e['value']).__name__} {e['value']!r}; the API "
                        "server accepts only strings"
                    )
                # $(VAR) refers to a variable defined before this one.
                env[name] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    path = vf["fieldRef"]["fieldPath"]
                    env[name] = {
                        "metadata.name": pod.name,
                        "metadata.namespace": self.namespace,
                        "status.podIP": pod.ip,
                        "spec.nodeName": "rehearsal-node",
                        "spec.serviceAccountName": pod.spec.get("serviceAccountName", "default"),
                    }[path]
                elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
                    kind = "Secret" if "secretKeyRef" in vf else "ConfigMap"
                    ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                    data = self.secret_data(ref["name"]) if kind == "Secret" else self.configmap_data(ref["name"])
                    if ref["key"] not in data:
                        if ref.get("optional"):
                            continue
                        raise RehearsalError(f"{pod.owner}: env {name}: {kind}/{ref['name']} has no key {ref['key']!r} (CreateContainerConfigError)")
                    env[name] = data[ref["key"]].decode()
                else:
                    raise RehearsalError(f"{pod.owner}: env {name}: valueFrom {list(vf)} is not imitated")
        return {k: self._translate(pod, v) for k, v in env.items()}

    def command(self, pod: Pod) -> list[str]:
        c = pod.container
        image = c["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
        if image not in self.images:
            raise RehearsalError(f"{pod.owner}: no stand-in for image {c['image']}")
        # The image's entrypoint is a path on this machine; what the manifest says is translated.
        if c.get("command"):
            return [self._translate(pod, a) for a in c["command"] + c.get("args", [])]
        return self.images[image] + [self._translate(pod, a) for a in c.get("args", [])]

    def container_env(self, pod: Pod) -> dict[str, str]:
        """What the process sees: the runtime's HOSTNAME, and HOME as runc sets it when the image
        does not (the user's passwd entry; a scratch image has none, so "/") — without it a
        static glibc binary asks NSS for a home directory and can crash — then the pod's env."""
        env = dict(self.base_env)
        env.update({"HOSTNAME": pod.name, "HOME": "/"})
        env.update(self.pod_env(pod))
        return env

    def _run(self, pod: Pod) -> None:
        env = self.container_env(pod)
        argv = self.command(pod)
        kwargs = {}
        sc = pod.spec.get("securityContext") or {}
        csc = pod.container.get("securityContext") or {}
        uid = csc.get("runAsUser", sc.get("runAsUser"))
        if os.geteuid() == 0 and uid is not None:
            kwargs["user"] = int(uid)
            kwargs["group"] = int(csc.get("runAsGroup", sc.get("runAsGroup", uid)))
            if sc.get("fsGroup") is not None:
                kwargs["extra_groups"] = [int(sc["fsGroup"])]
        log = open(pod.log_path(), "ab")
        pod.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=pod.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        log.close()
        record_pid(self.workdir, pod.proc.pid)
        pod.started = time.monotonic()
        pod.started_ok = False
        pod.ready = False
        pod.probe_due = {}
        pod.probe_failures = {}

    def exec_in(self, pod: Pod, argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
        """`kubectl exec`: a command with the pod's environment (the image's binary)."""
        return subprocess.run(argv, env=self.container_env(pod), cwd=pod.root, input=stdin, capture_output=True, timeout=120)

    # --- probes --------------------------------------------------------------------------------

    def _probe(self, pod: Pod, probe: dict) -> bool:
        get = probe.get("httpGet")
        if get is None:
            raise RehearsalError(f"{pod.owner}: only httpGet probes are imitated")
        try:
            conn = http.client.HTTPConnection(pod.ip, pod.port(get["port"]), timeout=probe.get("timeoutSeconds", 1))
            conn.request("GET", get.get("path", "/"), headers={"User-Agent": "kube-probe/1.33"})
            status = conn.getresponse().status
            conn.close()
            return 200 <= status < 400
        except (OSError, http.client.HTTPException):
            return False

    def _kubelet_loop(self) -> None:
        while not self.stopping.is_set():
            changed = False
            with self.lock:
                pods = list(self.pods.values())
            now = time.monotonic()
            for pod in pods:
                if pod.proc is None or pod.exit_code is not None:
                    continue
                code = pod.proc.poll()
                if code is not None:
                    if not pod.terminating and self._is_service_pod(pod):
                        # restartPolicy Always: the container is started again (CrashLoopBackOff).
                        pod.restarts += 1
                        if pod.ready:
                            pod.ready = False
                            changed = True
                        if pod.restarts <= 3:
                            self._run(pod)
                            continue
                    pod.exit_code = code
                    if pod.ready:
                        pod.ready = False
                        changed = True
                    continue
                if pod.terminating:
                    continue
                c = pod.container
                for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                    probe = c.get(kind)
                    if probe is None:
                        continue
                    if kind != "startupProbe" and not pod.started_ok and c.get("startupProbe"):
                        continue
                    if kind == "startupProbe" and pod.started_ok:
                        continue
                    due = pod.probe_due.get(kind, pod.started + probe.get("initialDelaySeconds", 0))
                    if now < due:
                        continue
                    pod.probe_due[kind] = now + probe.get("periodSeconds", 10)
                    ok = self._probe(pod, probe)
                    fails = 0 if ok else pod.probe_failures.get(kind, 0) + 1
                    pod.probe_failures[kind] = fails
                    if kind == "startupProbe":
                        if ok:
                            pod.started_ok = True
                        elif fails >= probe.get("failureThreshold", 3):
                            os.killpg(pod.proc.pid, signal.SIGKILL)
                    elif kind == "readinessProbe":
                        if ok and not pod.ready and fails == 0:
                            pod.ready = True
                            changed = True
                        elif not ok and pod.ready and fails >= probe.get("failureThreshold", 3):
                            pod.ready = False
                            changed = True
                    elif kind == "livenessProbe" and fails >= probe.get("failureThreshold", 3):
                        os.killpg(pod.proc.pid, signal.SIGKILL)
                if not c.get("startupProbe"):
                    pod.started_ok = True
                if not c.get("readinessProbe") and pod.started_ok and not pod.ready:
                    pod.ready = True
                    changed = True
            if changed and self.on_endpoints_change:
                self.on_endpoints_change()
            time.sleep(0.2)

    def _is_service_pod(self, pod: Pod) -> bool:
        return pod.spec.get("restartPolicy", "Always") == "Always"

    # --- services and endpoints -------------------------------------------------------------------

    def endpoints(self, service: dict, ready_only: bool = True) -> list[tuple[Pod, int]]:
        """(pod, target port) of the pods a Service selects, for its first (or named) port."""
        return self.service_endpoints(service, service["spec"]["ports"][0], ready_only)

    def service_endpoints(self, service: dict, port: dict, ready_only: bool = True) -> list[tuple[Pod, int]]:
        selector = service["spec"].get("selector", {})
        target = port.get("targetPort", port["port"])
        out = []
        with self.lock:
            for pod in self.pods.values():
                if pod.terminating or pod.exit_code is not None or pod.proc is None:
                    continue
                if not labels_match(selector, pod.labels):
                    continue
                if ready_only and not pod.ready:
                    continue
                out.append((pod, pod.port(target)))
        return sorted(out, key=lambda e: e[0].name)

    # --- termination -----------------------------------------------------------------------------

    def terminate(self, pod: Pod) -> float:
        """Delete a pod the way the kubelet does; returns the seconds it took to exit."""
        began = time.monotonic()
        pod.terminating = True
        was_ready = pod.ready
        pod.ready = False
        if was_ready and self.on_endpoints_change:
            self.on_endpoints_change()
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        pre_stop = (pod.container.get("lifecycle") or {}).get("preStop") or {}
        if "sleep" in pre_stop:
            time.sleep(min(pre_stop["sleep"]["seconds"], grace))
        elif pre_stop:
            raise RehearsalError(f"{pod.owner}: preStop {list(pre_stop)} is not imitated")
        if pod.proc and pod.proc.poll() is None:
            os.killpg(pod.proc.pid, signal.SIGTERM)
            try:
                pod.proc.wait(timeout=max(0.0, grace - (time.monotonic() - began)))
            except subprocess.TimeoutExpired:
                os.killpg(pod.proc.pid, signal.SIGKILL)
                pod.proc.wait()
        pod.exit_code = pod.proc.returncode if pod.proc else None
        return time.monotonic() - began

    def kill(self, pod: Pod) -> None:
        pod.terminating = True
        pod.ready = False
        if pod.proc and pod.proc.poll() is None:
            try:
                os.killpg(pod.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pod.proc.wait()

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            pods = list(self.pods.values())
        for pod in pods:
            self.kill(pod)
