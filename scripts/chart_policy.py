"""Policy tests over a rendered chart (scripts/check-chart.sh): what every object must satisfy.

Usage: chart_policy.py RENDERED.yaml VALUES.yaml
"""

import sys

import yaml

rendered, values_file = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []


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
        if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1]:
            fail(obj, f"{where}: image {image!r} has no pinned tag")
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

# No secret values in the rendering: secrets are only referenced (the generated cursor secret
# is random per install).
for secret in by_kind.get("Secret", []):
    if set(secret.get("data", {})) - {"cursor-secret"}:
        fail(secret, "the chart writes secret values other than the generated cursor secret")

if problems:
    sys.exit(f"{rendered}: {len(problems)} policy problem(s):\n  " + "\n  ".join(problems))
print(f"{rendered}: {len(docs)} objects pass the policies")
