"""Policy tests over a rendered chart (scripts/check-chart.sh): what every object must satisfy.

Usage: chart_policy.py RENDERED.yaml VALUES.yaml [RENDERED_AGAIN.yaml]
         RENDERED_AGAIN: the same values rendered a second time; it must be byte-identical.
       chart_policy.py --templates TEMPLATES_DIR
         the templates themselves: nothing that renders differently each time (random values,
         the clock), and no `lookup` without a `lookup:` comment saying why it is safe.
"""

import difflib
import ipaddress
import json
import os
import re
import sys

import jsonschema
import yaml

# Template functions whose result changes from one rendering to the next. `helm template`, `helm
# install --dry-run` and GitOps tools (Argo CD, Flux) render without a cluster, so a value that
# must be the same on every replica and every sync cannot come from them: it belongs in the
# existing Secret.
UNSTABLE = re.compile(
    r"\b(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|randInt|uuidv4|now|htpasswd|"
    r"genPrivateKey|genCA|genCAWithKey|genSelfSignedCert|genSelfSignedCertWithKey|genSignedCert|"
    r"genSignedCertWithKey|encryptAES)\b"
)
# A `lookup` answers from the cluster at install time and nothing under `helm template` or GitOps,
# so it may only decide something whose both answers are safe. The comment lines directly above
# it (or its own line) must say why: `lookup: <reason>`.
LOOKUP_WHY = re.compile(r"lookup:\s*\S.{20,}")


def check_templates(directory):
    found = []
    for base, _, files in sorted(os.walk(directory)):
        for file in sorted(files):
            path = os.path.join(base, file)
            lines = open(path).read().splitlines()
            for number, line in enumerate(lines, 1):
                # Template actions on this line, without {{/* comments */}}.
                actions = [a for a in re.findall(r"\{\{-?(.*?)-?\}\}", line) if not a.strip().startswith("/*")]
                code = " ".join(actions)
                for m in UNSTABLE.finditer(code):
                    found.append(f"{path}:{number}: {m.group(1)} renders differently every time "
                                 "(a value every replica shares belongs in secrets.existingSecret)")
                if re.search(r"\blookup\b", code):
                    # The comments directly above: `# …` lines and {{/* … */}} blocks.
                    above, i, in_block = [line], number - 2, False
                    while i >= 0:
                        prev = lines[i].strip()
                        if in_block or re.search(r"\*/\s*-?\}\}$", prev):
                            above.append(prev)
                            in_block = not re.match(r"\{\{-?\s*/\*", prev)
                        elif prev.startswith("#"):
                            above.append(prev)
                        else:
                            break
                        i -= 1
                    if not LOOKUP_WHY.search(" ".join(reversed(above))):
                        found.append(f"{path}:{number}: `lookup` without a `lookup: <why>` comment above it "
                                     "(it returns nothing under helm template, --dry-run and GitOps)")
    return found


if sys.argv[1] == "--templates":
    found = check_templates(sys.argv[2])
    if found:
        sys.exit(f"{sys.argv[2]}: {len(found)} template problem(s):\n  " + "\n  ".join(found))
    print(f"{sys.argv[2]}: no unstable functions, every lookup justified")
    sys.exit(0)

rendered, values_file = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []

# The same values give the same bytes: nothing random, nothing from the clock, no `lookup` whose
# answer changes the output between two renderings (GitOps tools diff and sync on exactly this).
if len(sys.argv) > 3:
    first, again = open(rendered).read(), open(sys.argv[3]).read()
    if first != again:
        diff = list(difflib.unified_diff(first.splitlines(), again.splitlines(), "first", "again", lineterm="", n=1))
        problems.append("two renderings with the same values differ:\n    " + "\n    ".join(diff[:20]))


def pinned(image):
    """Pinned by a digest, or by a tag other than latest (in the last path element: a registry's
    port is no tag)."""
    if re.search(r"@sha256:[a-f0-9]{64}$", image):
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


def fail(obj, message):
    problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {message}")


def pod_spec(obj):
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


by_kind = {}
for obj in docs:
    by_kind.setdefault(obj["kind"], []).append(obj)

for obj in docs:
    spec = pod_spec(obj)
    if spec is None:
        continue
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
    if spec.get("automountServiceAccountToken") is not False and not (
        obj["kind"] == "Deployment" and component == "worker"
    ):
        fail(obj, "mounts a service account token it does not need")
    pod_sc = spec.get("securityContext", {})
    if not pod_sc.get("runAsNonRoot"):
        fail(obj, "pod securityContext.runAsNonRoot is not true")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(obj, "pod seccompProfile is not RuntimeDefault")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        where = f"container {c['name']}"
        image = c.get("image", "")
        if not pinned(image):
            fail(obj, f"{where}: image {image!r} has no pinned tag or digest")
        limits = c.get("resources", {}).get("limits", {})
        if "cpu" not in limits or "memory" not in limits:
            fail(obj, f"{where}: no cpu and memory limits")
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            fail(obj, f"{where}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(obj, f"{where}: privilege escalation allowed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(obj, f"{where}: capabilities not all dropped")
        if obj["kind"] == "Deployment":
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    fail(obj, f"{where}: no {probe}")
            if "preStop" not in c.get("lifecycle", {}):
                fail(obj, f"{where}: no preStop drain")

# Every Deployment is scaled (HPA, or KEDA for the worker) when its values say so, and has a PDB
# when enabled.
values = yaml.safe_load(open(values_file)) or {}
defaults = yaml.safe_load(open("helm/storefront/values.yaml"))
keda = (values.get("keda") or {}).get("enabled", defaults["keda"]["enabled"])
scalers = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}
scalers |= {s["spec"]["scaleTargetRef"]["name"] for s in by_kind.get("ScaledObject", [])}
budgets = {tuple(sorted(p["spec"]["selector"]["matchLabels"].items())) for p in by_kind.get("PodDisruptionBudget", [])}
for d in by_kind.get("Deployment", []):
    component = d["metadata"]["labels"]["app.kubernetes.io/component"]
    svc = {**defaults["services"][component], **((values.get("services") or {}).get(component) or {})}
    autoscaling = {**defaults["services"][component]["autoscaling"], **(svc.get("autoscaling") or {})}
    pdb = {**defaults["services"][component]["pdb"], **(svc.get("pdb") or {})}
    if autoscaling["enabled"] and d["metadata"]["name"] not in scalers:
        fail(d, "autoscaling enabled but no HPA or ScaledObject targets it")
    if autoscaling["enabled"] and "replicas" in d["spec"]:
        fail(d, "sets replicas although an autoscaler owns them")
    selector = tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
    if pdb["enabled"] and selector not in budgets:
        fail(d, "PDB enabled but none selects it")
    if component == "worker" and keda and any(
        h["spec"]["scaleTargetRef"]["name"] == d["metadata"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])
    ):
        fail(d, "both an HPA and KEDA scale the worker")

# Hooks: migrations run before install/upgrade, first; the smoke test only under `helm test`.
for job in by_kind.get("Job", []):
    annotations = job["metadata"].get("annotations", {})
    if annotations.get("helm.sh/hook") != "pre-install,pre-upgrade":
        fail(job, "a Job that is not a pre-install/pre-upgrade hook")
    if int(annotations.get("helm.sh/hook-weight", "0")) >= 0:
        fail(job, "migrations must run before other hooks (negative weight)")
for pod in by_kind.get("Pod", []):
    if pod["metadata"].get("annotations", {}).get("helm.sh/hook") != "test":
        fail(pod, "a bare Pod that is not a helm test")

# Backups: the CronJobs run the repository's scripts unchanged, write to a volume that outlives
# `helm uninstall`, and never overlap.
values_backup = {**defaults["backup"], **(values.get("backup") or {})}
cronjobs = {c["metadata"]["labels"]["app.kubernetes.io/component"]: c for c in by_kind.get("CronJob", [])}
if values_backup["enabled"]:
    want = {"backup", "restore-verify"} if {**defaults["backup"]["verify"], **(values_backup.get("verify") or {})}["enabled"] else {"backup"}
    if {**defaults["backup"]["images"], **(values_backup.get("images") or {})}["enabled"]:
        want |= {"images-backup", "images-restore"}
    if set(cronjobs) != want:
        problems.append(f"backup enabled: CronJobs {sorted(cronjobs)}, expected {sorted(want)}")
    scripts = [c for c in by_kind.get("ConfigMap", []) if c["metadata"]["name"].endswith("-backup-scripts")]
    for name, content in (scripts[0]["data"] if scripts else {}).items():
        if content != open(f"scripts/{name}").read():
            fail(scripts[0], f"{name} differs from scripts/{name}")
    if not scripts:
        problems.append("backup enabled but no backup-scripts ConfigMap")
    for claim in by_kind.get("PersistentVolumeClaim", []):
        annotations = claim["metadata"].get("annotations", {})
        if annotations.get("helm.sh/resource-policy") != "keep":
            fail(claim, "the backup volume would be deleted by helm uninstall")
        if "pre-install" not in annotations.get("helm.sh/hook", ""):
            fail(claim, "not a hook: `helm --wait` would wait for a claim that binds on first use")
elif cronjobs:
    problems.append("backup disabled but CronJobs rendered")
for cron in cronjobs.values():
    if cron["spec"].get("concurrencyPolicy") != "Forbid":
        fail(cron, "runs may overlap (concurrencyPolicy is not Forbid)")
# A restore runs only when an operator starts it (kubectl create job --from=cronjob/…).
restore = cronjobs.get("images-restore")
if restore and restore["spec"].get("suspend") is not True:
    fail(restore, "a restore on a schedule would overwrite the store by itself (suspend is not true)")
images_backup = cronjobs.get("images-backup")
if images_backup and values_backup["enabled"]:
    # The images copy must hold every image the night's dump refers to: it runs after the dump.
    def minutes(schedule):
        minute, hour = schedule.split()[:2]
        return int(hour) * 60 + int(minute) if minute.isdigit() and hour.isdigit() else None
    dump, copy = minutes(cronjobs["backup"]["spec"]["schedule"]), minutes(images_backup["spec"]["schedule"])
    if dump is not None and copy is not None and copy <= dump:
        fail(images_backup, "runs before the pg_dump: the dump could refer to images the copy lacks")

# No secret values in the rendering: secrets are only referenced (secrets.existingSecret). The
# chart makes no Secret at all, not even a generated one (a generated value differs per rendering).
for secret in by_kind.get("Secret", []):
    fail(secret, "the chart writes a Secret: secrets come from secrets.existingSecret")

# TRUSTED_PROXIES: behind the Ingress the peer is the controller's pod; without its network here
# every client shares one address and one rate-limit budget. Each entry parses as the services'
# TrustedProxies::parse does (a CIDR or a bare address).
trusted = values.get("trustedProxies", defaults.get("trustedProxies", []))
if not defaults.get("trustedProxies"):
    problems.append("values.yaml: trustedProxies has no default (the ingress controller's pod networks)")
ingress = {**defaults["ingress"], **(values.get("ingress") or {})}
settings = [c for c in by_kind.get("ConfigMap", []) if "APP_ENV" in c.get("data", {})]
for config in settings:
    rendered_proxies = config["data"].get("TRUSTED_PROXIES", "")
    if rendered_proxies != ",".join(trusted):
        fail(config, f"TRUSTED_PROXIES is {rendered_proxies!r}, values say {','.join(trusted)!r}")
    for entry in filter(None, (e.strip() for e in rendered_proxies.split(","))):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            fail(config, f"TRUSTED_PROXIES: {entry!r} is not a CIDR or an IP address")
    if ingress["enabled"] and not rendered_proxies:
        fail(config, "the Ingress is on but TRUSTED_PROXIES is empty: all clients share the controller's address")
if not settings:
    problems.append("no ConfigMap with the services' settings (APP_ENV)")

# Credentials never go through a ConfigMap: the Sentry DSN and the OTLP headers (an API key) come
# from the Secret as files. Every NAME_FILE a container is given is a file its volumes mount.
CREDENTIALS = {"SENTRY_DSN", "OTEL_EXPORTER_OTLP_HEADERS", "DATABASE_URL", "DATABASE_READ_URL", "NATS_URL", "SMTP_URL",
               "AUTH_SIGNING_KEYS", "CURSOR_SECRET"}
for config in by_kind.get("ConfigMap", []):
    for key in set(config.get("data") or {}) & CREDENTIALS:
        fail(config, f"{key} is a credential: it belongs in the Secret (secrets.keys), mounted as {key}_FILE")
keys = {**defaults["secrets"]["keys"], **((values.get("secrets") or {}).get("keys") or {})}
existing_secret = {**defaults["secrets"], **(values.get("secrets") or {})}["existingSecret"]
# With CloudNativePG the database URLs are its Clusters' Secrets' (checked with the Clusters below).
cnpg_enabled = {**defaults["postgresql"]["cloudnativepg"],
                **((values.get("postgresql") or {}).get("cloudnativepg") or {})}["enabled"]


def mounted_files(spec, container):
    """The files a container's volumes mount from Secrets and ConfigMaps: path -> (name, key)."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounted = {}
    for m in container.get("volumeMounts", []):
        volume = volumes.get(m["name"], {})
        sources = volume.get("projected", {}).get("sources", [])
        if "secret" in volume:
            sources = [{"secret": {**volume["secret"], "name": volume["secret"].get("secretName")}}]
        for source in sources:
            ref = source.get("secret") or source.get("configMap") or {}
            for item in ref.get("items", []):
                mounted[f"{m['mountPath']}/{item['path']}"] = (ref.get("name"), item["key"])
    return mounted


for d in by_kind.get("Deployment", []):
    component = d["metadata"]["labels"]["app.kubernetes.io/component"]
    spec = d["spec"]["template"]["spec"]
    for c in spec["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        mounted = mounted_files(spec, c)
        for var, path in env.items():
            if var.endswith("_FILE") and path not in mounted:
                fail(d, f"container {c['name']}: {var}={path} is not a mounted file")
        # Secrets every replica must share come from the existing Secret and nowhere else: the
        # cursor secret (HMAC of list cursors) above all, which auth and catalog-order both need.
        for var, path in env.items():
            if cnpg_enabled and var == "DATABASE_URL_FILE":
                continue
            if var.endswith("_FILE") and var != "CURSOR_SECRET_FILE" and path in mounted and mounted[path][0] != existing_secret:
                fail(d, f"container {c['name']}: {var} comes from {mounted[path][0]!r}, not secrets.existingSecret {existing_secret!r}")
        if component in ("auth", "catalog-order"):
            path = env.get("CURSOR_SECRET_FILE")
            if path is None:
                fail(d, f"container {c['name']}: no CURSOR_SECRET_FILE (prod refuses to start without it)")
            elif mounted.get(path) != (existing_secret, keys["cursorSecret"]):
                fail(d, f"container {c['name']}: CURSOR_SECRET_FILE={path} is {mounted.get(path)}, not key "
                        f"{keys['cursorSecret']!r} of secrets.existingSecret {existing_secret!r}")
        for var, key in (("SENTRY_DSN_FILE", "sentryDsn"), ("OTEL_EXPORTER_OTLP_HEADERS_FILE", "otlpHeaders")):
            if keys.get(key) and var not in env:
                fail(d, f"container {c['name']}: secrets.keys.{key} is set but {var} is not passed")
            if not keys.get(key) and var in env:
                fail(d, f"container {c['name']}: {var} without secrets.keys.{key}")

# The values operators override by Bitnami's names reach every object as the values say. `effective`
# is Helm's own merge of the defaults and the value set: a null removes a default key (OpenShift
# leaves runAsUser and fsGroup out that way).
def coalesce(base, over):
    merged = dict(base)
    for key, value in (over or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = value
    return merged


def pod_metadata(obj):
    if obj["kind"] == "Pod":
        return obj["metadata"]
    if obj["kind"] in ("Deployment", "Job"):
        return obj["spec"]["template"].get("metadata", {})
    return obj["spec"]["jobTemplate"]["spec"]["template"].get("metadata", {})


def composed_from_secrets(container, var):
    """var's value is a postgresql:// URL whose user and password are $(NAME)s of the container's
    variables defined before it from Secret keys (Kubernetes expands them), with no secret text."""
    m = re.fullmatch(r"postgresql://\$\((\w+)\):\$\((\w+)\)@[a-z0-9.-]+:[0-9]+/\w+", var.get("value", ""))
    if not m:
        return False
    before = container.get("env", [])[:container.get("env", []).index(var)]
    from_secrets = {e["name"] for e in before if "secretKeyRef" in (e.get("valueFrom") or {})}
    return set(m.groups()) <= from_secrets


def helm_string(value):  # what `quote` makes of a value
    return str(value).lower() if isinstance(value, bool) else str(value)


effective = coalesce(defaults, values)
services_values = effective["services"]
# commonLabels on every object and pod template, under the object's own labels (ServiceMonitor,
# PrometheusRule and dashboards labels win); selectors keep the chart's labels only, so adding a
# label never orphans the pods of a running release.
SELECTOR_LABELS = {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
common_labels = effective.get("commonLabels") or {}
for obj in docs:
    own = {"ServiceMonitor": effective["serviceMonitor"].get("labels"),
           "PodMonitor": effective["serviceMonitor"].get("labels"),
           "PrometheusRule": effective["prometheusRule"].get("labels")}.get(obj["kind"]) or {}
    if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-dashboards"):
        own = effective["dashboards"].get("labels") or {}
    want = {**common_labels, **own}
    for where, labels in [("labels", obj["metadata"].get("labels", {}))] + (
            [("pod template labels", pod_metadata(obj).get("labels", {}))] if pod_spec(obj) is not None else []):
        missing = {k: v for k, v in want.items() if labels.get(k) != v}
        if missing:
            fail(obj, f"{where} lack {missing} (commonLabels or the object's own labels)")
    spec = obj.get("spec") or {}
    selectors = [spec.get("selector", {}).get("matchLabels") if obj["kind"] != "Service" else spec.get("selector"),
                 spec.get("podSelector", {}).get("matchLabels") if obj["kind"] == "NetworkPolicy" else None]
    selectors += [t["labelSelector"]["matchLabels"] for t in (pod_spec(obj) or {}).get("topologySpreadConstraints", [])]
    if obj["kind"] == "PodMonitor":
        selectors = []  # it selects CloudNativePG's instances by the operator's labels (checked below)
    for selector in filter(None, selectors):
        if not set(selector) <= SELECTOR_LABELS:
            fail(obj, f"selector {selector} has labels beyond {sorted(SELECTOR_LABELS)}")

# Security contexts: podSecurityContext for every pod but the pg_dump and restore-verify pods
# (backup.podSecurityContext: the postgres image's user); the images backup and restore run as the
# services' user with the backup's fsGroup (the volume's group); containerSecurityContext for every
# container. When runAsUser is left out (a platform that assigns UIDs: OpenShift's restricted SCC
# refuses a pod asking for one of its own), no pod or container may fix a UID, GID or fsGroup.
pod_sc = effective.get("podSecurityContext") or {}
backup_sc = effective["backup"].get("podSecurityContext") or {}
container_sc = effective.get("containerSecurityContext") or {}
assigned_ids = "runAsUser" not in pod_sc
for obj in docs:
    spec = pod_spec(obj)
    if spec is None:
        continue
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
    if obj["kind"] == "CronJob" and component in ("backup", "restore-verify"):
        want = backup_sc
    elif obj["kind"] == "CronJob":
        want = {k: v for k, v in pod_sc.items() if k != "fsGroup"}
        want.update({"fsGroup": backup_sc["fsGroup"]} if "fsGroup" in backup_sc else {})
    else:
        want = pod_sc
    if spec.get("securityContext", {}) != want:
        fail(obj, f"pod securityContext {spec.get('securityContext')} is not the values' {want}")
    contexts = [("pod", spec.get("securityContext", {}))]
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        contexts.append((f"container {c['name']}", c.get("securityContext", {})))
        if c.get("securityContext", {}) != container_sc:
            fail(obj, f"container {c['name']}: securityContext {c.get('securityContext')} is not containerSecurityContext {container_sc}")
    for where, sc in contexts if assigned_ids else []:
        fixed = sorted({"runAsUser", "runAsGroup", "fsGroup"} & set(sc))
        if fixed:
            fail(obj, f"{where} fixes {fixed} although podSecurityContext.runAsUser is unset (the platform assigns them)")

# Placement and pod annotations: the top-level values on every pod, a service's own on its
# Deployment (nodeSelector and podAnnotations merged, tolerations and affinity replaced).
registry = (effective.get("global") or {}).get("imageRegistry") or ""
for obj in docs:
    spec = pod_spec(obj)
    if spec is None:
        continue
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")
    svc = services_values.get(component, {}) if obj["kind"] == "Deployment" else {}
    want = {
        "nodeSelector": {**(effective.get("nodeSelector") or {}), **(svc.get("nodeSelector") or {})},
        "tolerations": svc.get("tolerations") or effective.get("tolerations") or [],
        "affinity": svc.get("affinity") or effective.get("affinity") or {},
    }
    for key, value in want.items():
        if spec.get(key, type(value)()) != value:
            fail(obj, f"{key} {spec.get(key)} is not the values' {value}")
    annotations = pod_metadata(obj).get("annotations") or {}
    wanted = {**(effective.get("podAnnotations") or {}), **(svc.get("podAnnotations") or {})}
    missing = {k: v for k, v in wanted.items() if annotations.get(k) != v}
    if missing:
        fail(obj, f"pod annotations lack podAnnotations {missing}")
    for c in spec.get("containers", []):
        if registry and not c["image"].startswith(registry.rstrip("/") + "/"):
            fail(obj, f"container {c['name']}: image {c['image']} is not from global.imageRegistry {registry}")
        # Credentials are files from the Secret, never a plain value in the pod spec either (a URL
        # whose user and password are $(VAR)s of Secret keys holds none: checked with the Clusters).
        for e in c.get("env", []):
            if e["name"] in CREDENTIALS and "value" in e and not composed_from_secrets(c, e):
                fail(obj, f"container {c['name']}: {e['name']} is a credential given as a plain value")

# Per service: the digest pins the image, extraEnv is the container's env, extraEnvVarsSecret its
# envFrom Secret.
for d in by_kind.get("Deployment", []):
    component = d["metadata"]["labels"]["app.kubernetes.io/component"]
    svc = services_values[component]
    c = d["spec"]["template"]["spec"]["containers"][0]
    digest = (svc.get("image") or {}).get("digest")
    if digest and not c["image"].endswith(f"/{component}@{digest}"):
        fail(d, f"image {c['image']} is not pinned by services.{component}.image.digest")
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for name, value in (svc.get("extraEnv") or {}).items():
        if env.get(name) != helm_string(value):
            fail(d, f"env {name}={env.get(name)!r}, services.{component}.extraEnv says {helm_string(value)!r}")
    secrets_from = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    if secrets_from != ([svc["extraEnvVarsSecret"]] if svc.get("extraEnvVarsSecret") else []):
        fail(d, f"envFrom Secrets {secrets_from}, services.{component}.extraEnvVarsSecret says {svc.get('extraEnvVarsSecret')!r}")

# PostgreSQL on CloudNativePG (postgresql.cloudnativepg): a Cluster per enabled service database as
# the values say, in the shape of the operator's CRD (helm/storefront/ci/schemas/), kept by `helm
# uninstall` and never a hook (Helm and Argo CD delete a hook before creating it again: the data
# would go with it). The services, the migration Jobs (after waiting for the primary) and the
# pg_dump read the owner's URL from the Cluster's -app Secret, and the NetworkPolicy lets them
# reach its instances. catalog-order's read replica, when it has one, is the Cluster's -ro Service
# (or secrets.keys.catalogDatabaseReadUrl), bounded by DATABASE_READ_MAX_LAG; nothing else gets one.
pg = effective["postgresql"]["cloudnativepg"]
DATABASES = {"auth": "auth", "catalog-order": "catalog"}
fullname = settings[0]["metadata"]["name"] if settings else ""
cluster_of = {service: f"{fullname}-{db}-db" for service, db in DATABASES.items()
              if pg["enabled"] and services_values[service]["enabled"]}
clusters = {c["metadata"]["name"]: c for c in by_kind.get("Cluster", [])}
if set(clusters) != set(cluster_of.values()):
    problems.append(f"CloudNativePG Clusters {sorted(clusters)}, values say {sorted(cluster_of.values())}")
cluster_schema = jsonschema.Draft7Validator(json.load(open("helm/storefront/ci/schemas/postgresql.cnpg.io_v1_Cluster.json")))
for name, cluster in clusters.items():
    for error in cluster_schema.iter_errors(cluster):
        fail(cluster, f"{'.'.join(map(str, error.absolute_path)) or 'the object'}: {error.message} (CloudNativePG's CRD)")
    annotations = cluster["metadata"].get("annotations") or {}
    if annotations.get("helm.sh/resource-policy") != "keep":
        fail(cluster, "helm uninstall would delete the database (no helm.sh/resource-policy: keep)")
    if "helm.sh/hook" in annotations:
        fail(cluster, "a hook: Helm and Argo CD delete a hook before creating it again, and the data with it")
    spec, db = cluster["spec"], name.removeprefix(f"{fullname}-").removesuffix("-db")
    initdb = spec.get("bootstrap", {}).get("initdb", {})
    if (initdb.get("database"), initdb.get("owner")) != (db, db):
        fail(cluster, f"bootstraps database {initdb.get('database')!r} owned by {initdb.get('owner')!r}, not {db!r}")
    if spec.get("instances") != pg["instances"] or spec.get("storage", {}).get("size") != pg["storage"]["size"]:
        fail(cluster, f"instances {spec.get('instances')} and storage {spec.get('storage')}, "
                      f"values say {pg['instances']} and {pg['storage']}")
    sync = spec.get("postgresql", {}).get("synchronous")
    want_sync = {"method": "any", "number": pg["synchronousReplicas"]} if pg["synchronousReplicas"] else None
    if (sync and {k: sync.get(k) for k in ("method", "number")}) != want_sync:
        fail(cluster, f"synchronous replication {sync}, values say {want_sync}")
    if sync and sync.get("number", 0) >= spec.get("instances", 1):
        fail(cluster, "as many synchronous standbys as instances: no commit could complete")
    # pg_dump must be at least as new as the server (majors from the images' tags).
    majors = [re.search(r":([0-9]+)", re.sub(r"@.*", "", image or ""))
              for image in (spec.get("imageName"), effective["backup"]["image"])]
    if effective["backup"]["enabled"] and all(majors) and int(majors[0].group(1)) > int(majors[1].group(1)):
        fail(cluster, f"PostgreSQL {majors[0].group(1)} is newer than backup.image's pg_dump ({majors[1].group(1)})")

reads = ("cloudnativepg" if pg["enabled"] and pg["catalogReadReplica"]
         else "secret" if keys.get("catalogDatabaseReadUrl") else "")
for d in by_kind.get("Deployment", []):
    component = d["metadata"]["labels"]["app.kubernetes.io/component"]
    spec = d["spec"]["template"]["spec"]
    c = spec["containers"][0]
    env = {e["name"]: e for e in c.get("env", [])}
    files = mounted_files(spec, c)
    if component in DATABASES:
        key = keys["authDatabaseUrl" if component == "auth" else "catalogDatabaseUrl"]
        cluster = cluster_of.get(component)
        want = (f"{cluster}-app", "uri") if cluster else (existing_secret, key)
        got = files.get((env.get("DATABASE_URL_FILE") or {}).get("value"))
        if got != want:
            fail(d, f"DATABASE_URL_FILE is {got}, not {want}")
    read_url, read_file = env.get("DATABASE_READ_URL"), env.get("DATABASE_READ_URL_FILE")
    if component != "catalog-order" or not reads:
        if read_url or read_file:
            fail(d, "has a read replica URL, which only catalog-order with a read replica configured gets")
        continue
    if reads == "cloudnativepg":
        cluster = cluster_of["catalog-order"]
        m = re.fullmatch(rf"postgresql://\$\((\w+)\):\$\((\w+)\)@{cluster}-ro\.[a-z0-9-]+:5432/catalog",
                         (read_url or {}).get("value", ""))
        refs = [((env.get(v) or {}).get("valueFrom") or {}).get("secretKeyRef") for v in (m.groups() if m else ())]
        if not m or refs != [{"name": f"{cluster}-app", "key": "username"}, {"name": f"{cluster}-app", "key": "password"}]:
            fail(d, f"DATABASE_READ_URL {(read_url or {}).get('value')!r} is not {cluster}'s owner "
                    f"(from {cluster}-app) at {cluster}-ro")
    elif files.get((read_file or {}).get("value")) != (existing_secret, keys["catalogDatabaseReadUrl"]):
        fail(d, f"DATABASE_READ_URL_FILE {(read_file or {}).get('value')!r} is not key "
                f"{keys['catalogDatabaseReadUrl']!r} of secrets.existingSecret")
for config in settings:
    lag = config["data"].get("DATABASE_READ_MAX_LAG")
    if lag != (effective["database"]["readMaxLag"] if reads else None):
        fail(config, f"DATABASE_READ_MAX_LAG {lag!r}, values say {effective['database']['readMaxLag'] if reads else None!r}")

for job in by_kind.get("Job", []):
    service = job["metadata"]["labels"]["app.kubernetes.io/component"].removesuffix("-migrate")
    spec = job["spec"]["template"]["spec"]
    c = spec["containers"][0]
    url = next((e.get("value") for e in c.get("env", []) if e["name"] == "DATABASE_URL_FILE"), None)
    cluster = cluster_of.get(service)
    key = keys["authDatabaseUrl" if service == "auth" else "catalogDatabaseUrl"]
    want = (f"{cluster}-app", "uri") if cluster else (existing_secret, key)
    if mounted_files(spec, c).get(url) != want:
        fail(job, f"DATABASE_URL_FILE {url} is {mounted_files(spec, c).get(url)}, not {want}")
    waits = [i for i in spec.get("initContainers", []) if f" {cluster}-rw " in " ".join(i.get("command", []) + i.get("args", []))]
    if cluster and not waits:
        fail(job, f"does not wait for {cluster}-rw: right after the Cluster is created its primary is still starting")

if "backup" in cronjobs:
    spec = cronjobs["backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = spec["containers"][0]
    targets = next(e["value"] for e in c["env"] if e["name"] == "BACKUP_TARGETS")
    files = mounted_files(spec, c)
    got = {name: files.get(path) for name, path in (t.split("=", 1) for t in targets.split())}
    want = ({DATABASES[s]: (f"{cl}-app", "uri") for s, cl in cluster_of.items()} if pg["enabled"] else
            {"auth": (existing_secret, keys["authDatabaseUrl"]), "catalog": (existing_secret, keys["catalogDatabaseUrl"])})
    if got != want:
        fail(cronjobs["backup"], f"dumps {got}, not {want}")

for policy in by_kind.get("NetworkPolicy", []) if cluster_of else []:
    if not policy["spec"].get("egress"):
        continue
    reached = {v for rule in policy["spec"]["egress"] for to in rule.get("to", [])
               for e in (to.get("podSelector") or {}).get("matchExpressions", []) if e["key"] == "cnpg.io/cluster"
               for v in e["values"] if {"port": 5432, "protocol": "TCP"} in rule.get("ports", [])}
    if reached != set(cluster_of.values()):
        fail(policy, f"egress on 5432 reaches the Clusters {sorted(reached)}, not {sorted(cluster_of.values())}")

monitors = {m["metadata"]["name"]: m for m in by_kind.get("PodMonitor", [])}
want_monitors = set(cluster_of.values()) if pg["podMonitor"] and effective["serviceMonitor"]["enabled"] else set()
if set(monitors) != want_monitors:
    problems.append(f"PodMonitors {sorted(monitors)}, expected {sorted(want_monitors)}")
for name, monitor in monitors.items():
    if monitor["spec"]["selector"] != {"matchLabels": {"cnpg.io/cluster": name, "cnpg.io/podRole": "instance"}} or \
            [e.get("port") for e in monitor["spec"]["podMetricsEndpoints"]] != ["metrics"]:
        fail(monitor, "does not scrape the `metrics` port of the Cluster's instances")

# Artifact Hub lists the images the chart runs (Chart.yaml's artifacthub.io/images): with the
# default images, every one rendered is listed, and with every part on, every one listed is rendered.
chart = yaml.safe_load(open("helm/storefront/Chart.yaml"))
listed = {i["image"] for i in yaml.safe_load((chart.get("annotations") or {}).get("artifacthub.io/images", "[]"))}
images_set = any(key in values for key in ("image", "global")) or "image" in (values.get("backup") or {}) \
    or "image" in (values.get("tests") or {}) or any("image" in (s or {}) for s in (values.get("services") or {}).values())
rendered_images = {c["image"] for obj in docs if pod_spec(obj) for c in pod_spec(obj)["containers"]}
if not images_set:
    if rendered_images - listed:
        problems.append(f"Chart.yaml: artifacthub.io/images lacks {sorted(rendered_images - listed)}")
    if {"backup", "images-backup"} <= set(cronjobs) and len(by_kind.get("Deployment", [])) == 3 and listed - rendered_images:
        problems.append(f"Chart.yaml: artifacthub.io/images lists {sorted(listed - rendered_images)}, which the chart does not run")

# Production runs at least two replicas of every service: the defaults say so, and what is
# rendered follows the values (HPA, KEDA's ScaledObject, or a fixed count).
for component, svc in defaults["services"].items():
    if svc["replicas"] < 2 or svc["autoscaling"]["minReplicas"] < 2:
        problems.append(f"values.yaml: services.{component} defaults to fewer than 2 replicas")
for d in by_kind.get("Deployment", []):
    component = d["metadata"]["labels"]["app.kubernetes.io/component"]
    svc = {**defaults["services"][component], **((values.get("services") or {}).get(component) or {})}
    autoscaling = {**defaults["services"][component]["autoscaling"], **(svc.get("autoscaling") or {})}
    name = d["metadata"]["name"]
    floors = [h["spec"]["minReplicas"] for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == name]
    floors += [s["spec"]["minReplicaCount"] for s in by_kind.get("ScaledObject", []) if s["spec"]["scaleTargetRef"]["name"] == name]
    if autoscaling["enabled"] and floors != [autoscaling["minReplicas"]]:
        fail(d, f"autoscaler minimum {floors}, values say {autoscaling['minReplicas']}")
    if not autoscaling["enabled"] and d["spec"].get("replicas") != svc["replicas"]:
        fail(d, f"replicas {d['spec'].get('replicas')}, values say {svc['replicas']}")

# The ServiceMonitor keeps the services' own `service` label (auth, catalog-order, worker) instead
# of renaming it exported_service, and leaves `job` the Service's name (ServiceDown names it).
monitor_values = {**defaults["serviceMonitor"], **(values.get("serviceMonitor") or {})}
if defaults["serviceMonitor"].get("honorLabels") is not True:
    problems.append("values.yaml: serviceMonitor.honorLabels must default to true")
for monitor in by_kind.get("ServiceMonitor", []):
    if "jobLabel" in monitor["spec"]:
        fail(monitor, "jobLabel set: job must stay the Service's name (<fullname>-<service>)")
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint.get("honorLabels", False) != monitor_values.get("honorLabels"):
            fail(monitor, f"endpoint {endpoint.get('port')}: honorLabels is not {monitor_values.get('honorLabels')}")

# Two releases in one Prometheus never merge: every aggregation of the alert rules and the
# dashboards keeps `namespace`, and every dashboard query selects the dashboard's $namespace.
# ServiceDown exists for every enabled service when the chart's ServiceMonitor names its jobs.
AGGREGATION = re.compile(
    r"\b(sum|min|max|avg|group|stddev|stdvar|count|count_values|bottomk|topk|quantile|limitk|limit_ratio)"
    r"\s*(?:(by|without)\s*\(([^)]*)\))?\s*\("
)
MATCHING = re.compile(r"\b(on|ignoring)\s*\(([^)]*)\)")
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar",
                "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}


def unquoted(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', re.sub(r"#.*", "", expr))


def closing(text, start):
    """The index after the parenthesis that closes the one at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


def dropped_namespace(expr):
    """The aggregations and vector matchings of expr that lose `namespace`."""
    text, lost = unquoted(expr), []
    for m in AGGREGATION.finditer(text):
        modifier, labels = m.group(2), m.group(3)
        if modifier is None:  # `sum (...) by (...)`, or no grouping at all
            after = re.match(r"\s*(by|without)\s*\(([^)]*)\)", text[closing(text, m.end() - 1):])
            modifier, labels = (after.group(1), after.group(2)) if after else (None, "")
        names = {label.strip() for label in labels.split(",")}
        if modifier != "without" and "namespace" not in names or modifier == "without" and "namespace" in names:
            lost.append(text[m.start():m.end()] + "…")
    for m in MATCHING.finditer(text):
        names = {label.strip() for label in m.group(2).split(",")}
        if (m.group(1) == "on") != ("namespace" in names):
            lost.append(m.group(0))
    return lost


def unselected(expr, matcher='namespace=~"$namespace"'):
    """The vector selectors of expr that do not carry matcher."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*|\S', re.sub(r"#.*", "", expr))
    missing, i, in_list = [], 0, False
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("by", "without", "on", "ignoring", "group_left", "group_right") and following == "(":
            in_list = True
        elif in_list and token == ")":
            in_list = False
        elif token.startswith("{") and matcher not in token:
            missing.append(token)
        elif re.match(r"[A-Za-z_:]", token) and not in_list and following != "(" and token not in PROMQL_WORDS:
            if not following.startswith("{") or matcher not in following:
                missing.append(token + (following if following.startswith("{") else ""))
            i += following.startswith("{")
        i += 1
    return missing


assert dropped_namespace("sum by (service) (rate(x[5m]))") and dropped_namespace("sum(x)")
assert dropped_namespace("a unless on (service) b") and dropped_namespace("sum without (namespace) (x)")
assert not dropped_namespace('sum by (namespace, le) (rate(x_count{a="sum(y)"}[5m])) and on (namespace) max_over_time(z[5m])')
assert not dropped_namespace("sum(rate(x[5m])) by (namespace, service)")
assert unselected('rate(x{a="b"}[5m])') and unselected("max(x)") and not unselected('sum by (le) (x{namespace=~"$namespace"})')

rule_objects = by_kind.get("PrometheusRule", [])
for rule_object in rule_objects:
    down = set()
    for group in rule_object["spec"]["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            for lost in dropped_namespace(rule["expr"]):
                fail(rule_object, f"{group['name']}/{name}: {lost} drops namespace")
            if rule.get("alert") == "ServiceDown":
                down.add(rule["labels"]["service"])
                jobs = set(re.findall(r'\bjob="([^"]+)"', rule["expr"]))
                want = {s["metadata"]["name"] for s in by_kind.get("Service", [])
                        if s["metadata"]["labels"]["app.kubernetes.io/component"] == rule["labels"]["service"]}
                if not jobs or jobs != want or 'namespace="' not in rule["expr"]:
                    fail(rule_object, f"ServiceDown/{rule['labels']['service']}: jobs {sorted(jobs)}, Services {sorted(want)}, or no namespace")
                if "absent(" not in rule["expr"]:
                    fail(rule_object, f"ServiceDown/{rule['labels']['service']}: no absent() for a job without targets")
    enabled = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in by_kind.get("Deployment", [])}
    if by_kind.get("ServiceMonitor") and down != enabled:
        fail(rule_object, f"ServiceDown for {sorted(down)}, services {sorted(enabled)}")


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


for config in by_kind.get("ConfigMap", []):
    if not config["metadata"]["name"].endswith("-dashboards"):
        continue
    for file, content in config["data"].items():
        dashboard = json.loads(content)
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        if "namespace" not in variables:
            fail(config, f"{file}: no `namespace` template variable")
        for name, variable in variables.items():
            query = variable.get("definition", "") if variable.get("type") == "query" else ""
            if name != "namespace" and query and "$namespace" not in query:
                fail(config, f"{file}: variable {name} ({query}) ignores $namespace")
        for panel in panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                for lost in dropped_namespace(expr):
                    fail(config, f"{file} / {panel['title']}: {lost} drops namespace")
                for selector in unselected(expr):
                    fail(config, f"{file} / {panel['title']}: {selector} does not select $namespace")

if problems:
    sys.exit(f"{rendered}: {len(problems)} policy problem(s):\n  " + "\n  ".join(problems))
print(f"{rendered}: {len(docs)} objects pass the policies")
