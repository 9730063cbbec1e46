#!/usr/bin/env python3
"""deploy/k8s/check.py: the Kubernetes manifests (deploy/k8s, deploy/k8s-fleet) are valid and agree with supervisor.toml.

Run by `scripts/test k8s` with the validator pinned in deploy/k8s/requirements.txt:

    python3 deploy/k8s/check.py [--kubernetes-version 1.30.0 …]

1. Renders the kustomization the way `kubectl apply -k deploy/k8s` would (with
   `kubectl kustomize` when kubectl is installed, else a small built-in
   renderer for the few kustomize features used here), in a scratch copy
   that gets a tokens.env made from tokens.env.example.
2. Validates every manifest file and the rendered output against the
   Kubernetes OpenAPI schemas with kubernetes-validate --strict: unknown
   fields, wrong types and missing required fields are errors, and so is a
   kind it has no schema for.
3. Checks what no schema knows: the probes hit corral's http listener and the
   paths /livez and /readyz, terminationGracePeriodSeconds is above
   shutdown_timeout, the ports are the ones supervisor.toml listens on (and
   corral-api's is not exposed), the Secret has every key referenced, the
   NetworkPolicy covers the ports it should and 9222 only for CDP clients.
4. Renders and validates deploy/k8s-fleet (the StatefulSet overlay) too, and
   checks it: a headless Service that the set names, a ReadWriteOnce claim
   per replica at DATA_DIR, the pod template equal to the Deployment's but for
   the replica's names and its claim, CORRAL_ALLOW_HOSTS naming replica K's
   own DNS name, a PodDisruptionBudget that selects the replicas.

`--render DIR [--tokens-env FILE]` only prints DIR rendered, one JSON
document per line (tests/kube plays that with `podman kube play`).

Exit 0 when everything holds; 1 with every problem listed otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SUPERVISOR_TOML = ROOT / "supervisor.toml"

# Kubernetes versions to validate against: the oldest still commonly run and
# the newest the pinned validator knows.
DEFAULT_VERSIONS = ["1.29.0", "1.37.0"]

# Variables the programs read themselves (not through supervisor.toml).
PROGRAM_ENV = {
    "CORRAL_CDP_TOKEN",
    "CORRAL_LIVE_TOKEN",
    "CORRAL_LIVE_VIEW_TOKEN",
    "CORRAL_SNAPSHOT_TOKEN",
    "CORRAL_API_TOKEN",
    "CORRAL_ALLOW_HOSTS",
    "CORRAL_ALLOW_ORIGINS",
    "CORRAL_LOG",
    "CORRAL_LOG_FORMAT",
    "CORRAL_CONFIG",
    "CORRAL_SOCKET",
}
TOKENS = ["CORRAL_CDP_TOKEN", "CORRAL_LIVE_TOKEN", "CORRAL_LIVE_VIEW_TOKEN", "CORRAL_SNAPSHOT_TOKEN", "CORRAL_API_TOKEN"]
CDP_CLIENT_LABEL = "corral.dev/cdp-client"

problems: list[str] = []


def problem(msg: str) -> None:
    problems.append(msg)


# ---------------------------------------------------------------- rendering


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_builtin(kdir: Path) -> list[dict]:
    """The subset of kustomize these directories use: resources (files, or
    directories holding a kustomization), images, secretGenerator with envs
    (name suffix left out), patches that delete a resource, namespace."""
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    allowed = {"apiVersion", "kind", "resources", "images", "secretGenerator", "namespace", "patches"}
    for key in set(k) - allowed:
        problem(f"{kdir.name}/kustomization.yaml: {key!r} is not understood by check.py's built-in renderer")
    docs: list[dict] = []
    for res in k.get("resources", []):
        path = kdir / res
        docs += render_builtin(path) if path.is_dir() else load_docs(path.read_text())
    for gen in k.get("secretGenerator", []):
        data: dict[str, str] = {}
        for env_file in gen.get("envs", []):
            for line in (kdir / env_file).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    key, _, value = line.partition("=")
                    data[key] = value
        docs.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": gen["name"]}, "stringData": data})
    for patch in k.get("patches", []):
        p = yaml.safe_load(patch.get("patch", "")) or {}
        if p.get("$patch") != "delete":
            problem(f"{kdir.name}/kustomization.yaml: only `$patch: delete` patches are understood by check.py")
            continue
        docs = [d for d in docs if (d["kind"], d["metadata"]["name"]) != (p["kind"], p["metadata"]["name"])]
    for img in k.get("images", []):
        for d in docs:
            for c in pod_spec(d).get("containers", []) if pod_spec(d) else []:
                if c["image"].split(":")[0] == img["name"]:
                    c["image"] = f"{img.get('newName', img['name'])}:{img.get('newTag', 'latest')}"
    if "namespace" in k:
        for d in docs:
            d["metadata"]["namespace"] = k["namespace"]
    return docs


def render(kdir: Path) -> tuple[str, list[dict]]:
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(kdir)], capture_output=True, text=True)
        if out.returncode != 0:
            problem(f"kubectl kustomize failed: {out.stderr.strip()}")
            return "", []
        return out.stdout, load_docs(out.stdout)
    print("check.py: kubectl not found; rendering with the built-in subset of kustomize")
    docs = render_builtin(kdir)
    return yaml.safe_dump_all(docs, sort_keys=False), docs


# --------------------------------------------------------------- validation


def validate(paths: list[Path], versions: list[str]) -> None:
    exe = Path(sys.executable).parent / "kubernetes-validate"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "kubernetes_validate"]
    for version in versions:
        out = subprocess.run(cmd + ["--strict", "-k", version] + [str(p) for p in paths],
                             capture_output=True, text=True)
        lines = (out.stdout + out.stderr).strip().splitlines()
        for line in lines:
            print(f"  [k8s {version}] {line}")
        # A kind without a schema is only a warning to the tool: not here.
        bad = [l for l in lines if l.startswith(("ERROR", "WARN"))]
        if out.returncode != 0 or bad:
            problem(f"kubernetes-validate --strict -k {version}: {len(bad) or 'some'} problem(s), see above")


# ------------------------------------------------------ supervisor.toml model


def expand(s: str, env: dict[str, str]) -> str:
    """${VAR} and ${VAR:-default}, as corral expands them."""
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(3)
        if name in env:
            return env[name]
        if default is None:
            problem(f"supervisor.toml: ${{{name}}} has no default and the Deployment does not set it")
            return ""
        return default
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", sub, s)


def toml_vars(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))


def seconds(duration: str) -> float:
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if not parts or "".join(n + u for n, u in parts) != duration.replace(" ", ""):
        problem(f"cannot read the duration {duration!r}")
        return 0.0
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * unit[u] for n, u in parts)


def argv(program: dict) -> list[str]:
    cmd = program["command"]
    return cmd.replace("\\\n", " ").split() if isinstance(cmd, str) else list(cmd)


def arg_after(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


# ------------------------------------------------------------------- checks


def pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") in ("Deployment", "StatefulSet"):
        return doc["spec"]["template"]["spec"]
    return None


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        problem(f"expected exactly one {kind}, found {len(found)}")
        return {}
    return found[0]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check(docs: list[dict], kdir: Path) -> None:
    kinds = sorted(d["kind"] for d in docs)
    expected = sorted(["Deployment", "NetworkPolicy", "PersistentVolumeClaim", "Secret", "Service"])
    if kinds != expected:
        problem(f"rendered kinds {kinds}, expected {expected}")

    # Every manifest in the directory is listed in the kustomization.
    k = yaml.safe_load((HERE / "kustomization.yaml").read_text())
    files = {p.name for p in HERE.glob("*.yaml")} - {"kustomization.yaml"}
    if set(k.get("resources", [])) != files:
        problem(f"kustomization.yaml resources {sorted(k.get('resources', []))} != the manifests {sorted(files)}")

    dep, svc = one(docs, "Deployment"), one(docs, "Service")
    pvc, netpol, secret = one(docs, "PersistentVolumeClaim"), one(docs, "NetworkPolicy"), one(docs, "Secret")
    if not (dep and svc and pvc and netpol and secret):
        return
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]

    # One browser per profile.
    if spec.get("replicas") != 1:
        problem("Deployment: replicas must be 1 (one Chromium per ReadWriteOnce profile)")
    if spec.get("strategy", {}).get("type") != "Recreate":
        problem("Deployment: strategy must be Recreate (a rolling update would mount the profile twice)")
    if pvc["spec"].get("accessModes") != ["ReadWriteOnce"]:
        problem("PVC: accessModes must be [ReadWriteOnce]")
    if not matches(spec["selector"]["matchLabels"], pod_labels):
        problem("Deployment: selector does not match the pod template's labels")

    # corral must be PID 1 of the pod's container.
    if pod.get("shareProcessNamespace") or pod.get("hostPID"):
        problem("Deployment: shareProcessNamespace/hostPID would take PID 1 away from corral")
    if pod.get("enableServiceLinks", True):
        problem("Deployment: enableServiceLinks must be false (service variables like CDP_PORT=tcp://… clash with supervisor.toml's)")
    if len(pod["containers"]) != 1:
        problem("Deployment: expected one container")
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
        problem("container: must not be privileged and must set allowPrivilegeEscalation: false")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problem("container: capabilities must drop ALL and add back only what corral needs")
    for needed in ("SETUID", "SETGID", "KILL"):
        if needed not in sc.get("capabilities", {}).get("add", []):
            problem(f"container: corral needs CAP_{needed} to drop programs to their user and signal them")

    # The environment: every variable set is one supervisor.toml or a program reads.
    toml_text = SUPERVISOR_TOML.read_text()
    env: dict[str, str] = {}
    secret_refs: list[tuple[str, str, str]] = []
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            secret_refs.append((e["name"], ref["name"], ref["key"]))
            env[e["name"]] = "<secret>"
        if e["name"] not in toml_vars(toml_text) | PROGRAM_ENV:
            problem(f"container env {e['name']}: read by nothing (supervisor.toml nor the programs): a typo?")
    for token in TOKENS:
        if token not in {name for name, _, _ in secret_refs}:
            problem(f"container env: {token} must come from the Secret (secretKeyRef)")
    secret_keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
    for name, sname, key in secret_refs:
        if sname != secret["metadata"]["name"]:
            problem(f"env {name}: secretKeyRef names Secret {sname!r}, the rendered one is {secret['metadata']['name']!r}")
        if key not in secret_keys:
            problem(f"env {name}: the Secret has no key {key!r} (tokens.env.example: {sorted(secret_keys)})")

    cfg = tomllib.loads(expand(toml_text, env))
    sup, progs = cfg["supervisor"], cfg["programs"]

    # Grace period above corral's own bound on the shutdown.
    if "CORRAL_SHUTDOWN_TIMEOUT" not in env:
        problem("container env: set CORRAL_SHUTDOWN_TIMEOUT explicitly, next to terminationGracePeriodSeconds")
    shutdown = seconds(sup["shutdown_timeout"])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not grace > shutdown:
        problem(f"terminationGracePeriodSeconds {grace} must exceed shutdown_timeout {sup['shutdown_timeout']}")

    # Listeners, from supervisor.toml as this environment expands it.
    listeners = {
        "probes": port_of(sup["http"]),
        "cdp": port_of(arg_after(argv(progs["cdp"]), "--listen")),
        "snapshot": port_of(arg_after(argv(progs["snapshot"]), "--listen")),
        "novnc": port_of(arg_after(argv(progs["novnc"]), "--listen")),
    }
    api_listen = arg_after(argv(progs["api"]), "--listen")
    api_port = port_of(api_listen)
    if not api_listen.startswith("127."):
        problem(f"supervisor.toml: corral-api listens on {api_listen} in this environment; keep it on loopback")
    cports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if cports != listeners:
        problem(f"container ports {cports} != supervisor.toml's listeners {listeners}")
    if api_port in cports.values():
        problem(f"container port {api_port} (corral-api) must not be declared")

    def resolve(port) -> int | None:
        return cports.get(port) if isinstance(port, str) else port

    # Probes: corral's http listener, the right paths.
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet")
        if not get:
            problem(f"container: {probe} must be an httpGet on corral's listener")
            continue
        if get.get("path") != path:
            problem(f"{probe}: path {get.get('path')!r}, expected {path}")
        if resolve(get.get("port")) != listeners["probes"]:
            problem(f"{probe}: port {get.get('port')!r} is not supervisor.toml's http port {listeners['probes']}")
    start = c.get("startupProbe", {})
    budget = start.get("periodSeconds", 10) * start.get("failureThreshold", 3)
    chromium_ready = seconds(progs["chromium"]["ready"].get("timeout", "30s"))
    if budget < 2 * chromium_ready:
        problem(f"startupProbe allows {budget}s: less than twice Chromium's ready timeout ({chromium_ready}s)")

    # Volumes: the profile on the PVC at DATA_DIR, a memory-backed /dev/shm.
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    data_dir = env.get("DATA_DIR", "/data")
    claim = vols.get(mounts.get(data_dir, ""), {}).get("persistentVolumeClaim", {}).get("claimName")
    if claim != pvc["metadata"]["name"]:
        problem(f"DATA_DIR {data_dir} must be mounted from the PVC {pvc['metadata']['name']!r}")
    if vols.get(mounts.get("/dev/shm", ""), {}).get("emptyDir", {}).get("medium") != "Memory":
        problem("/dev/shm must be an emptyDir with medium: Memory")
    limits = c.get("resources", {}).get("limits", {})
    if "memory" not in limits or "memory" not in c.get("resources", {}).get("requests", {}):
        problem("container: memory requests and limits are required (Chromium needs 1-2 GiB)")

    # Service: the pod, the listeners, nothing else.
    if not matches(svc["spec"]["selector"], pod_labels):
        problem("Service: selector does not match the pod's labels")
    sports = {p["name"]: (p["port"], resolve(p["targetPort"])) for p in svc["spec"]["ports"]}
    for name, port in listeners.items():
        if sports.get(name) != (port, port):
            problem(f"Service port {name}: {sports.get(name)}, expected ({port}, {port})")
    if set(sports) != set(listeners):
        problem(f"Service ports {sorted(sports)} != {sorted(listeners)}")

    # NetworkPolicy: selects the pod; every exposed port allowed from someone,
    # 9222 only from CDP clients, nothing open on all ports.
    np = netpol["spec"]
    if not matches(np["podSelector"].get("matchLabels", {}), pod_labels):
        problem("NetworkPolicy: podSelector does not select the corral pod")
    if "Ingress" not in np.get("policyTypes", []):
        problem("NetworkPolicy: policyTypes must include Ingress")
    allowed: set[int] = set()
    for i, rule in enumerate(np.get("ingress", [])):
        ports = {resolve(p["port"]) for p in rule.get("ports", [])}
        if not ports:
            problem(f"NetworkPolicy ingress[{i}]: no ports: it opens every port")
        if not rule.get("from"):
            problem(f"NetworkPolicy ingress[{i}]: no 'from': open to everyone")
        allowed |= ports
        if listeners["cdp"] in ports:
            for peer in rule.get("from", []):
                pod_sel = peer.get("podSelector", {}).get("matchLabels", {})
                ns_sel = peer.get("namespaceSelector", {}).get("matchLabels", {})
                if pod_sel.get(CDP_CLIENT_LABEL) != "true" and ns_sel.get(CDP_CLIENT_LABEL) != "true":
                    problem(f"NetworkPolicy ingress[{i}]: a peer reaches CDP without the {CDP_CLIENT_LABEL}=true label")
    if allowed != set(listeners.values()):
        problem(f"NetworkPolicy allows ports {sorted(allowed)}, expected {sorted(listeners.values())}")


# -------------------------------------------------------------- the fleet

FLEET = ROOT / "deploy" / "k8s-fleet"
# What a replica's pod template may differ from the Deployment's in: its own
# DNS names (and the variables they are built from), and the data volume,
# which a volumeClaimTemplate provides.
FLEET_ENV = {"POD_NAME", "POD_NAMESPACE", "CORRAL_ALLOW_HOSTS"}
HOST_NAME = re.compile(r"^[a-z0-9._-]{1,253}$")


def expand_k8s(value: str, env: dict[str, str]) -> str:
    """$(VAR) as the kubelet expands it: only variables defined earlier."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in env:
            problem(f"StatefulSet env: $({m.group(1)}) is not defined before it is used")
            return m.group(0)
        return env[m.group(1)]
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, value)


def check_fleet(docs: list[dict], base: list[dict]) -> None:
    kinds = sorted(d["kind"] for d in docs)
    expected = sorted(["NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "StatefulSet"])
    if kinds != expected:
        problem(f"k8s-fleet: rendered kinds {kinds}, expected {expected}")
        return
    sts, svc, pdb = one(docs, "StatefulSet"), one(docs, "Service"), one(docs, "PodDisruptionBudget")
    netpol, secret = one(docs, "NetworkPolicy"), one(docs, "Secret")
    dep = next((d for d in base if d["kind"] == "Deployment"), None)
    if not (sts and svc and pdb and netpol and secret and dep):
        return
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    name = sts["metadata"]["name"]

    # Stable DNS names: a headless Service that the set names and that selects its pods.
    if svc["spec"].get("clusterIP") != "None":
        problem("k8s-fleet Service: clusterIP must be None (headless: one DNS name per replica)")
    if spec.get("serviceName") != svc["metadata"]["name"]:
        problem(f"StatefulSet serviceName {spec.get('serviceName')!r} is not the headless Service {svc['metadata']['name']!r}")
    if not matches(svc["spec"]["selector"], labels) or not matches(spec["selector"]["matchLabels"], labels):
        problem("k8s-fleet: the Service or the set's selector does not match the pod labels")
    if not matches(netpol["spec"]["podSelector"].get("matchLabels", {}), labels):
        problem("k8s-fleet: the NetworkPolicy does not select the replicas")
    if not matches(pdb["spec"]["selector"].get("matchLabels", {}), labels):
        problem("k8s-fleet: the PodDisruptionBudget does not select the replicas")
    if "maxUnavailable" not in pdb["spec"] and "minAvailable" not in pdb["spec"]:
        problem("k8s-fleet: the PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
    if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 2:
        problem("StatefulSet: replicas should be 2 or more (one browser is the Deployment's job)")

    # Each replica its own claim, at DATA_DIR; no shared one.
    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
    c = pod["containers"][0]
    env_list = c.get("env", [])
    data_dir = next((e.get("value") for e in env_list if e["name"] == "DATA_DIR"), "/data")
    mount = next((m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == data_dir), None)
    if mount not in claims:
        problem(f"StatefulSet: {data_dir} must be mounted from a volumeClaimTemplate (found {mount!r})")
    elif claims[mount]["spec"].get("accessModes") != ["ReadWriteOnce"]:
        problem("StatefulSet: the claim template must be ReadWriteOnce (one Chromium per profile)")
    if any("persistentVolumeClaim" in v for v in pod.get("volumes", [])):
        problem("StatefulSet: a persistentVolumeClaim volume would be shared by every replica")

    # The pod template is the Deployment's, but for FLEET_ENV and the data volume.
    def comparable(p: dict) -> dict:
        p = yaml.safe_load(yaml.safe_dump(p))
        for ctr in p["containers"]:
            ctr["env"] = [e for e in ctr.get("env", []) if e["name"] not in FLEET_ENV]
        p["volumes"] = [v for v in p.get("volumes", []) if "persistentVolumeClaim" not in v]
        return p
    base_pod = dep["spec"]["template"]
    if comparable(pod) != comparable(base_pod["spec"]) or sts["spec"]["template"]["metadata"] != base_pod["metadata"]:
        problem("StatefulSet: its pod template drifted from deploy/k8s/deployment.yaml's "
                f"(only {sorted(FLEET_ENV)} and the data volume may differ)")

    # CORRAL_ALLOW_HOSTS names replica K's own DNS names, whatever K and the namespace.
    for ordinal, ns in ((0, "default"), (7, "browsers")):
        pod_name = f"{name}-{ordinal}"
        env: dict[str, str] = {}
        for e in env_list:
            ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if ref == "metadata.name":
                env[e["name"]] = pod_name
            elif ref == "metadata.namespace":
                env[e["name"]] = ns
            elif "value" in e:
                env[e["name"]] = expand_k8s(str(e["value"]), env)
        hosts = [h.strip() for h in env.get("CORRAL_ALLOW_HOSTS", "").split(",") if h.strip()]
        want = f"{pod_name}.{svc['metadata']['name']}.{ns}.svc.cluster.local"
        if want not in hosts:
            problem(f"StatefulSet: CORRAL_ALLOW_HOSTS of {pod_name} in {ns} is {hosts}, without {want}")
        for h in hosts:
            if not HOST_NAME.match(h):
                problem(f"StatefulSet: CORRAL_ALLOW_HOSTS entry {h!r} is not a host name corral accepts")

    # Secret keys referenced exist.
    keys = set(secret.get("data", {})) | set(secret.get("stringData", {}))
    for e in env_list:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and (ref["name"] != secret["metadata"]["name"] or ref["key"] not in keys):
            problem(f"StatefulSet env {e['name']}: no key {ref['key']!r} in Secret {ref['name']!r}")


def render_json(kdir: Path, tokens: Path | None) -> int:
    """Prints the kustomization at KDIR rendered, as one JSON document per
    line (JSON is YAML: podman kube play reads it): for tests/kube."""
    with tempfile.TemporaryDirectory(prefix="corral-k8s.") as tmp:
        deploy = Path(tmp) / "deploy"
        for d in (HERE, FLEET):
            shutil.copytree(d, deploy / d.name, ignore=shutil.ignore_patterns("tokens.env", "__pycache__"))
        shutil.copy(tokens or HERE / "tokens.env.example", deploy / "k8s" / "tokens.env")
        _, docs = render(deploy / kdir.resolve().name)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for d in docs:
        print(json.dumps(d))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubernetes-version", action="append", dest="versions")
    ap.add_argument("--render", type=Path, metavar="DIR",
                    help="only print DIR (deploy/k8s or deploy/k8s-fleet) rendered, as JSON lines")
    ap.add_argument("--tokens-env", type=Path, metavar="FILE",
                    help="with --render: the tokens.env to render with (default: the example)")
    args = ap.parse_args()
    if args.render:
        return render_json(args.render, args.tokens_env)

    with tempfile.TemporaryDirectory(prefix="corral-k8s.") as tmp:
        # Both kustomizations, side by side as in the repository (the fleet's
        # base is ../k8s), with a tokens.env made from the example.
        deploy = Path(tmp) / "deploy"
        for d in (HERE, FLEET):
            shutil.copytree(d, deploy / d.name, ignore=shutil.ignore_patterns("tokens.env", "__pycache__"))
        shutil.copy(HERE / "tokens.env.example", deploy / "k8s" / "tokens.env")
        rendered_text, docs = render(deploy / "k8s")
        rendered = Path(tmp) / "rendered.yaml"
        rendered.write_text(rendered_text)
        fleet_text, fleet_docs = render(deploy / "k8s-fleet")
        fleet_rendered = Path(tmp) / "rendered-fleet.yaml"
        fleet_rendered.write_text(fleet_text)

        manifests = sorted(p for d in (HERE, FLEET) for p in d.glob("*.yaml") if p.name != "kustomization.yaml")
        print(f"check.py: validating {', '.join(p.name for p in manifests)} and both rendered kustomizations")
        validate(manifests + [rendered, fleet_rendered], args.versions or DEFAULT_VERSIONS)
        if docs:
            check(docs, deploy / "k8s")
        if fleet_docs:
            check_fleet(fleet_docs, docs)

    if problems:
        for p in problems:
            print(f"check.py: {p}", file=sys.stderr)
        print(f"check.py: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check.py: manifests valid and consistent with supervisor.toml (deploy/k8s and deploy/k8s-fleet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
