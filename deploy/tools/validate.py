#!/usr/bin/env python3
"""Offline consistency checks for deploy/, run by .ci/check-deploy.

Each subcommand prints what it checked and exits non-zero on a problem:

  dashboard RULES_OUT   Grafana dashboard: structure, targets, recorded names
                        and metric names; writes every panel query into
                        RULES_OUT as a rule file so promtool parses the PromQL.
  metric-names          every mitra_* name used by the rules and the dashboard
                        is one of the documented metrics (below); names not
                        (yet) found in src/ are reported as a note.
  compose               compose.yaml, example.env and the Dockerfile against
                        each other and the repository.
  kustomize-fallback OUT  without kubectl: assembles the kustomize base's
                        resources into OUT (namespace applied).
  k8s RENDERED          semantic checks of the rendered manifests (labels and
                        selectors, probes, security context, references).
  runbooks              every alert's runbook annotation names a section of
                        deploy/README.md, and every alert has one.
  prom-k8s-config OUT   writes prometheus-kubernetes.yml with its Kubernetes
                        service discovery swapped for a static target, so
                        Debian's promtool (built without Kubernetes SD) can
                        check the rest of it.

Needs PyYAML.
"""

import fnmatch
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
RECORDING = os.path.join(DEPLOY, "prometheus", "rules", "recording.yml")
ALERTS = os.path.join(DEPLOY, "prometheus", "rules", "alerts.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "dashboards", "mitra.json")
GENERATOR = os.path.join(DEPLOY, "grafana", "generate-dashboard.py")
COMPOSE_DIR = os.path.join(DEPLOY, "docker")
K8S_DIR = os.path.join(DEPLOY, "k8s")

# The metrics mitra exports (the contract in /work/shared/design.md section 4
# and the metric list the ops deliverables were written against). Histograms
# are listed by base name.
COUNTERS = {
    "mitra_http_requests_total",
    "mitra_clicks_total",
    "mitra_click_rollup_total",
    "mitra_conversions_total",
    "mitra_commission_minor_total",
    "mitra_commissions_total",
    "mitra_revenue_minor_total",
    "mitra_payouts_total",
    "mitra_payout_minor_total",
    "mitra_backend_errors_total",
    "mitra_worker_steps_total",
}
HISTOGRAMS = {
    "mitra_redirect_duration_seconds",
    "mitra_webhook_duration_seconds",
    "mitra_http_request_duration_seconds",
}
GAUGES = {
    "mitra_queue_depth",
    "mitra_queue_oldest_age_seconds",
    "mitra_backend_up",
    "mitra_build_info",
}
KNOWN = COUNTERS | GAUGES | {f"{h}{s}" for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}

_failures = []


def fail(msg):
    _failures.append(msg)
    print(f"  FAIL: {msg}")


def note(msg):
    print(f"  note: {msg}")


def done(what):
    if _failures:
        print(f"{what}: {len(_failures)} problem(s)")
        sys.exit(1)
    print(f"{what}: ok")


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_rules(path):
    doc = load_yaml(path)
    return [r for g in doc["groups"] for r in g["rules"]]


STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
# An identifier possibly containing colons: a metric or recorded series name.
IDENT_RE = re.compile(r"(?<![A-Za-z0-9_:$.])([A-Za-z_:][A-Za-z0-9_:]*)")
RANGE_RE = re.compile(r"\[[^\]]*\]")


def names_in(expr):
    """Series names an expression selects: identifiers outside strings,
    label matchers and ranges that contain a colon or start with mitra_."""
    e = STRING_RE.sub('""', expr)
    e = RANGE_RE.sub("[]", e)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    out = set()
    for m in IDENT_RE.finditer(e):
        name = m.group(1)
        if ":" in name or name.startswith("mitra_"):
            out.add(name)
    return out


def grafana_to_promql(expr):
    """Replaces Grafana's variables with values promtool accepts."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "1m")
        .replace("$program", ".*")
    )


# ------------------------------------------------------------ dashboard
def cmd_dashboard(rules_out):
    recorded = {r["record"] for r in load_rules(RECORDING) if "record" in r}
    with open(DASHBOARD) as f:
        text = f.read()
    dash = json.loads(text)
    print(f"  {DASHBOARD}: parsed, {len(dash.get('panels', []))} panels")

    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        if key not in dash:
            fail(f"dashboard has no {key!r}")
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    if "program" not in variables:
        fail("dashboard has no 'program' template variable")
    else:
        q = variables["program"].get("definition", "")
        for n in names_in(q.replace("label_values", "")):
            if n not in KNOWN:
                fail(f"program variable queries unknown metric {n}")
    if "datasource" not in variables:
        fail("dashboard has no 'datasource' template variable")

    ids = set()
    exprs = []
    used_recorded = set()
    section = None
    rows = []
    for p in dash.get("panels", []):
        pid = p.get("id")
        if pid in ids:
            fail(f"panel id {pid} is used twice")
        ids.add(pid)
        gp = p.get("gridPos", {})
        if not all(k in gp for k in ("h", "w", "x", "y")) or gp.get("x", 0) + gp.get("w", 0) > 24:
            fail(f"panel {p.get('title')!r} has a bad gridPos {gp}")
        if p.get("type") == "row":
            section = p.get("title")
            rows.append(section)
            continue
        title = p.get("title", f"id {pid}")
        targets = p.get("targets") or []
        if not targets:
            fail(f"panel {title!r} has no targets")
        if not p.get("datasource"):
            fail(f"panel {title!r} has no datasource")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            fail(f"panel {title!r} has missing or repeated refIds {refs}")
        for t in targets:
            expr = (t.get("expr") or "").strip()
            if not expr:
                fail(f"panel {title!r} target {t.get('refId')} has no expr")
                continue
            exprs.append((title, expr))
            for n in names_in(expr):
                if ":" in n:
                    used_recorded.add(n)
                    if n not in recorded:
                        fail(f"panel {title!r} uses {n}, which recording.yml does not define")
                elif n not in KNOWN:
                    fail(f"panel {title!r} uses unknown metric {n}")
            if section == "Business" and "$program" not in expr:
                fail(f"business panel {title!r} does not filter by $program: {expr}")
    for want in ("Operations", "Business"):
        if want not in rows:
            fail(f"dashboard has no {want!r} row")
    print(f"  {len(exprs)} queries; {len(used_recorded)} recorded series used, all defined"
          if not _failures else f"  {len(exprs)} queries checked")

    # Every query as a recording rule, for `promtool check rules`.
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)}
             for i, (_, e) in enumerate(exprs)]
    with open(rules_out, "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, f,
                       sort_keys=False)

    # The committed JSON is what the generator writes.
    gen = subprocess.run([sys.executable, GENERATOR, "--stdout"], capture_output=True, text=True)
    if gen.returncode != 0:
        fail(f"generate-dashboard.py failed: {gen.stderr.strip()}")
    elif gen.stdout != text:
        fail("dashboards/mitra.json differs from generate-dashboard.py's output: "
             "run python3 deploy/grafana/generate-dashboard.py")
    else:
        print("  mitra.json matches generate-dashboard.py")
    done("dashboard")


# --------------------------------------------------------- metric names
def cmd_metric_names():
    used = {}
    for path in (RECORDING, ALERTS):
        for r in load_rules(path):
            for n in names_in(r["expr"]):
                used.setdefault(n, set()).add(os.path.relpath(path, ROOT))
    recorded = {r["record"] for r in load_rules(RECORDING)}
    with open(DASHBOARD) as f:
        dash = json.load(f)
    for p in dash["panels"]:
        for t in p.get("targets", []):
            for n in names_in(t.get("expr", "")):
                used.setdefault(n, set()).add("dashboard")
    for n, where in sorted(used.items()):
        if ":" in n:
            if n not in recorded:
                fail(f"{n} (used in {', '.join(sorted(where))}) is not a recorded series")
        elif n not in KNOWN:
            fail(f"{n} (used in {', '.join(sorted(where))}) is not a documented mitra metric")
    raw = sorted(n for n in used if ":" not in n)
    print(f"  {len(raw)} mitra metric names used by rules and dashboard, all documented")

    # Cross-check with the code, as information only: the metrics are being
    # written alongside these files.
    src = os.path.join(ROOT, "src")
    in_src = set()
    for dirpath, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs"):
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    code = f.read()
                if "Opts::new" in code:  # where metrics are declared
                    in_src.update(re.findall(r'"(mitra_[a-z0-9_]+)"', code))
    bases = {re.sub(r"_(bucket|sum|count)$", "", n) if re.sub(r"_(bucket|sum|count)$", "", n)
             in HISTOGRAMS else n for n in raw}
    missing = sorted(b for b in bases if b not in in_src)
    if in_src and missing:
        note("not (yet) registered in src/: " + ", ".join(missing))
    extra = sorted(n for n in in_src if n not in KNOWN and n not in HISTOGRAMS)
    if extra:
        note("registered in src/ but not used here: " + ", ".join(extra))
    done("metric names")


# -------------------------------------------------------------- compose
def parse_env_file(path):
    env = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" not in line:
                fail(f"{path}:{n}: not NAME=value")
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = v
    return env


def redis_as_deployed():
    """The (flag, value) pairs of REDIS_AS_DEPLOYED in scripts/services.sh:
    the Redis persistence the benches run with."""
    with open(os.path.join(ROOT, "scripts", "services.sh")) as f:
        m = re.search(r"^REDIS_AS_DEPLOYED=\(([^)]*)\)", f.read(), re.M)
    if not m:
        fail("scripts/services.sh defines no REDIS_AS_DEPLOYED")
        return []
    words = m.group(1).split()
    if len(words) % 2:
        fail(f"REDIS_AS_DEPLOYED is not flag/value pairs: {words}")
        return []
    return list(zip(words[::2], words[1::2]))


def cmd_compose():
    path = os.path.join(COMPOSE_DIR, "compose.yaml")
    with open(path) as f:
        raw = f.read()
    doc = yaml.safe_load(raw)
    print(f"  {path}: parsed")
    services = doc.get("services", {})
    for want in ("postgres", "redis", "migrate", "api", "worker", "prometheus", "grafana"):
        if want not in services:
            fail(f"compose has no service {want!r}")

    def cmd(s):
        return services.get(s, {}).get("command")

    def runs_with(s, flag, value):
        args = [str(a) for a in (cmd(s) or [])]
        return flag in args and args[args.index(flag) + 1:][:1] == [value]

    # The redis-cluster profile's nodes.
    nodes = [n for n, svc in services.items()
             if "redis-cluster" in (svc.get("profiles") or []) and n.startswith("redis-node-")]

    if cmd("migrate") != ["mitra", "migrate"]:
        fail(f"migrate runs {cmd('migrate')}, expected mitra migrate")
    if cmd("api") != ["mitra", "serve", "--role", "api"]:
        fail(f"api runs {cmd('api')}")
    if cmd("worker") != ["mitra", "serve", "--role", "worker"]:
        fail(f"worker runs {cmd('worker')}")
    # Every Redis persists as the benches measure it (REDIS_AS_DEPLOYED).
    persistence = redis_as_deployed()
    for n in ["redis"] + nodes:
        for flag, value in persistence:
            if not runs_with(n, flag, value):
                fail(f"{n} does not run with {flag} {value}, as the benches do "
                     "(REDIS_AS_DEPLOYED in scripts/services.sh)")
    if not str(services.get("postgres", {}).get("image", "")).startswith("postgres:15"):
        fail("postgres is not postgres:15")
    if "healthcheck" not in services.get("postgres", {}):
        fail("postgres has no healthcheck")
    for s in ("api", "worker"):
        dep = services.get(s, {}).get("depends_on", {})
        if not isinstance(dep, dict) or dep.get("migrate", {}).get("condition") != \
                "service_completed_successfully":
            fail(f"{s} does not wait for migrate to complete")
        env = services.get(s, {}).get("environment", {})
        for var in ("DATABASE_URL", "REDIS_URL", "MITRA_ADMIN_TOKEN", "MITRA_LINK_KEYS"):
            if var not in env:
                fail(f"{s} has no {var}")
        if env.get("MITRA_LISTEN") != "0.0.0.0:8080":
            fail(f"{s} does not listen on 0.0.0.0:8080")
    for name, svc in services.items():
        if svc.get("restart", "no") not in ("no", "always", "on-failure", "unless-stopped") \
                and not str(svc.get("restart")).startswith("on-failure:"):
            fail(f"{name}: restart {svc.get('restart')!r} is not a restart policy")
        deps = svc.get("depends_on", [])
        for d in (deps if isinstance(deps, list) else deps.keys()):
            if d not in services:
                fail(f"{name} depends on unknown service {d}")
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith((".", "/")):
                full = os.path.normpath(os.path.join(COMPOSE_DIR, src))
                if not os.path.exists(full):
                    fail(f"{name} mounts {src}, which does not exist ({full})")
            elif src not in (doc.get("volumes") or {}):
                fail(f"{name} uses undeclared volume {src}")
        build = svc.get("build")
        if build:
            ctx = os.path.normpath(os.path.join(COMPOSE_DIR, build["context"]))
            if not os.path.isfile(os.path.join(ctx, build["dockerfile"])):
                fail(f"{name}: no {build['dockerfile']} in build context {ctx}")

    # The redis-cluster profile: six cluster nodes persisting like the single
    # Redis, joined as three primaries with a replica each.
    if len(nodes) != 6:
        fail(f"the redis-cluster profile has {len(nodes)} nodes, expected 6")
    for n in nodes:
        for flag, value in (("--cluster-enabled", "yes"), ("--appendonly", "yes"),
                            ("--cluster-require-full-coverage", "no")):
            if not runs_with(n, flag, value):
                fail(f"{n} does not run with {flag} {value}")
    init = " ".join(cmd("redis-cluster-init") or [])
    if "--cluster create" not in init or "--cluster-replicas 1" not in init:
        fail("redis-cluster-init does not create the cluster with a replica per primary")
    if "redis-cluster" not in (services.get("redis-cluster-init", {}).get("profiles") or []):
        fail("redis-cluster-init runs outside the redis-cluster profile")
    for s in ("api", "worker"):
        dep = services.get(s, {}).get("depends_on", {}).get("redis-cluster-init", {})
        if dep.get("required") is not False:
            fail(f"{s} must wait for redis-cluster-init only when the profile is on")

    # Every variable compose interpolates is in example.env or has a default.
    env = parse_env_file(os.path.join(COMPOSE_DIR, "example.env"))
    for m in re.finditer(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}", raw):
        var, rest = m.group(1), m.group(2) or ""
        if var not in env and not rest.startswith((":-", "-")):
            fail(f"compose uses ${{{var}}} without a default, and example.env does not set it")
    for var in ("MITRA_ADMIN_TOKEN", "MITRA_LINK_KEYS", "POSTGRES_PASSWORD"):
        if var not in env:
            fail(f"example.env has no {var}")
    if len(env.get("MITRA_ADMIN_TOKEN", "")) < 16:
        fail("example.env's MITRA_ADMIN_TOKEN placeholder is under 16 characters")
    for pair in env.get("MITRA_LINK_KEYS", "").split(","):
        kid, _, secret = pair.partition(":")
        if not kid.isdigit() or len(secret) < 22:
            fail(f"example.env's MITRA_LINK_KEYS entry {kid!r} is not id:secret of >= 22 chars")
    print(f"  example.env: {len(env)} variables; every interpolation is covered")

    check_dockerfile()
    done("compose")


def check_dockerfile():
    path = os.path.join(COMPOSE_DIR, "Dockerfile")
    with open(path) as f:
        lines = f.read().replace("\\\n", " ").splitlines()
    instr = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
    froms = [l for l in instr if l.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail("Dockerfile is not multi-stage")
    if not any("rust:" in l for l in froms) or not any("debian:" in l for l in froms):
        fail(f"Dockerfile stages are not rust -> debian: {froms}")
    # COPY sources (outside --from stages) must exist in the build context;
    # a wildcard may match nothing (BuildKit then copies nothing).
    copied = []
    for l in instr:
        if l.upper().startswith("COPY ") and "--from" not in l:
            parts = [p for p in l.split()[1:] if not p.startswith("--")]
            for src in parts[:-1]:
                copied.append(src)
                if any(ch in src for ch in "*?["):
                    continue
                if not os.path.exists(os.path.join(ROOT, src)):
                    fail(f"Dockerfile copies {src}, which is not in the repository root")
    text = "\n".join(instr)
    for want, why in (
        (r"SQLX_OFFLINE=true", "SQLX_OFFLINE=true"),
        (r"cargo build --release --locked", "cargo build --release --locked"),
        (r'HEALTHCHECK .*CMD \["mitra", "healthcheck"\]', "HEALTHCHECK mitra healthcheck"),
        (r"^EXPOSE 8080 9102$", "EXPOSE 8080 9102"),
        (r"MITRA_METRICS_LISTEN=0\.0\.0\.0:9102", "MITRA_METRICS_LISTEN=0.0.0.0:9102"),
        (r'^CMD \["mitra", "serve", "--role", "api"\]$', 'CMD ["mitra","serve","--role","api"]'),
        (r"^COPY benche(s|\[s\])", "COPY benches (the manifest needs them)"),
        (r"ca-certificates", "ca-certificates"),
    ):
        if not re.search(want, text, re.M):
            fail(f"Dockerfile lacks {why}")
    users = [l for l in instr if l.upper().startswith("USER ")]
    if not users or users[-1].split()[1].split(":")[0] in ("root", "0"):
        fail("Dockerfile's final stage does not run as a non-root USER")
    # The manifest's declared targets must be among what is copied.
    cargo = os.path.join(ROOT, "Cargo.toml")
    if os.path.exists(cargo):
        with open(cargo) as f:
            manifest = f.read()
        declared = [m.group(1) for m in re.finditer(r'^path\s*=\s*"([^"]+)"', manifest, re.M)]
        if re.search(r"^\[\[bench\]\]", manifest, re.M):
            declared.append("benches/")
            if not os.path.isdir(os.path.join(ROOT, "benches")):
                fail("Cargo.toml declares benches but there is no benches/ directory")
        if os.path.exists(os.path.join(ROOT, "build.rs")):
            declared.append("build.rs")
        for path in declared:
            top = path.split("/")[0]
            if not any(fnmatch.fnmatch(top, c.rstrip("/")) for c in copied):
                fail(f"Cargo.toml needs {path} but the Dockerfile does not copy {top}")
    ignores = [os.path.join(COMPOSE_DIR, n) for n in ("dockerignore", "Dockerfile.dockerignore")]
    contents = []
    for path in ignores:
        with open(path) as f:
            contents.append(f.read())
    if contents[0] != contents[1]:
        fail("deploy/docker/dockerignore and Dockerfile.dockerignore differ")
    patterns = [l.strip() for l in contents[0].splitlines() if l.strip() and not l.startswith("#")]
    for c in copied:
        top = c.rstrip("/").split("/")[0]
        for pat in patterns:
            if not pat.startswith("!") and fnmatch.fnmatch(top, pat):
                fail(f"the ignore file pattern {pat!r} drops {c}, which the Dockerfile copies")
    print(f"  Dockerfile: {len(froms)} stages, non-root user {users[-1].split()[1] if users else '?'}")


# ----------------------------------------------------------- kubernetes
def cmd_kustomize_fallback(out):
    kz = load_yaml(os.path.join(K8S_DIR, "kustomization.yaml"))
    ns = kz.get("namespace")
    common = {}
    for entry in kz.get("labels", []):
        common.update(entry.get("pairs", {}))
    docs = []
    for res in kz["resources"]:
        with open(os.path.join(K8S_DIR, res)) as f:
            for d in yaml.safe_load_all(f):
                if not d:
                    continue
                md = d.setdefault("metadata", {})
                if ns and d["kind"] != "Namespace":
                    md["namespace"] = ns
                md.setdefault("labels", {}).update(common)
                docs.append(d)
    for img in kz.get("images", []):
        for d in docs:
            spec = d.get("spec", {})
            tmpl = spec.get("template", {}).get("spec", {})
            for c in tmpl.get("containers", []):
                name = c["image"].rsplit(":", 1)[0]
                if name == img["name"]:
                    c["image"] = f"{img.get('newName', name)}:{img.get('newTag', 'latest')}"
    with open(out, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)
    print(f"  assembled {len(docs)} resources from {len(kz['resources'])} files into {out}")
    done("kustomize fallback")


def cmd_k8s(rendered):
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    print(f"  {len(docs)} resources: " + ", ".join(
        f"{k}/{n}" for k in sorted(by_kind) for n in sorted(by_kind[k])))

    want = {
        "ConfigMap": ["mitra-config"], "Secret": ["mitra-secrets"], "Job": ["mitra-migrate"],
        "Deployment": ["mitra-api", "mitra-worker"], "Service": ["mitra-api"],
        "HorizontalPodAutoscaler": ["mitra-api"],
        "PodDisruptionBudget": ["mitra-api", "mitra-worker"],
    }
    for kind, names in want.items():
        for n in names:
            if n not in by_kind.get(kind, {}):
                fail(f"no {kind} {n}")

    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if len(namespaces) != 1 or None in namespaces:
        fail(f"resources are not all in one namespace: {namespaces}")

    def matches(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    pod_specs = {}
    for kind in ("Deployment", "Job"):
        for name, d in by_kind.get(kind, {}).items():
            pod_specs[f"{kind}/{name}"] = d["spec"]["template"]
    deployments = by_kind.get("Deployment", {})
    for name, d in deployments.items():
        sel = d["spec"]["selector"]["matchLabels"]
        if not matches(sel, d["spec"]["template"]["metadata"].get("labels", {})):
            fail(f"Deployment {name}: selector {sel} does not match its pod labels")
        if d["spec"]["template"]["spec"].get("terminationGracePeriodSeconds") != 15:
            fail(f"Deployment {name}: terminationGracePeriodSeconds is not 15")
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        # /metrics has its own port (MITRA_METRICS_LISTEN), which no Service exposes.
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "9102":
            fail(f"Deployment {name}: no prometheus.io scrape annotations for port 9102")
        if d["spec"].get("replicas") != 2:
            fail(f"Deployment {name}: replicas is not 2")
        for c in d["spec"]["template"]["spec"]["containers"]:
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                pr = c.get(probe, {}).get("httpGet", {})
                if pr.get("path") != path:
                    fail(f"Deployment {name}: {probe} is not GET {path}")
                port = pr.get("port")
                if isinstance(port, str) and port not in ports:
                    fail(f"Deployment {name}: {probe} uses unknown port name {port}")
                if ports.get(port, port) != 8080:
                    fail(f"Deployment {name}: {probe} is not on port 8080")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                fail(f"Deployment {name}: container {c['name']} lacks requests or limits")

    for where, tmpl in pod_specs.items():
        spec = tmpl["spec"]
        psc = spec.get("securityContext", {})
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                fail(f"{where}: container {c['name']} may run as root")
            if not sc.get("readOnlyRootFilesystem"):
                fail(f"{where}: container {c['name']} has a writable root file system")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(f"{where}: container {c['name']} allows privilege escalation")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                fail(f"{where}: container {c['name']} keeps capabilities")
            if not c.get("image", "").startswith("ghcr.io/mitra/mitra:"):
                note(f"{where}: image is {c.get('image')} (overridden)")
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref and ref["configMapRef"]["name"] not in by_kind.get("ConfigMap", {}):
                    fail(f"{where}: unknown ConfigMap {ref['configMapRef']['name']}")
                if "secretRef" in ref and ref["secretRef"]["name"] not in by_kind.get("Secret", {}):
                    fail(f"{where}: unknown Secret {ref['secretRef']['name']}")
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            vols = {v["name"] for v in spec.get("volumes", [])}
            if mounts - vols:
                fail(f"{where}: mounts undeclared volumes {mounts - vols}")
    job = by_kind.get("Job", {}).get("mitra-migrate")
    if job and job["spec"]["template"]["spec"]["containers"][0].get("command") != ["mitra", "migrate"]:
        fail("Job mitra-migrate does not run mitra migrate")

    def pods_of(selector):
        return [n for n, d in deployments.items()
                if matches(selector, d["spec"]["template"]["metadata"].get("labels", {}))]

    for name, svc in by_kind.get("Service", {}).items():
        hit = pods_of(svc["spec"]["selector"])
        if hit != ["mitra-api"]:
            fail(f"Service {name} selects {hit}, expected only mitra-api")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort")
            if isinstance(tp, str) and hit:
                names = {pp.get("name") for c in deployments[hit[0]]["spec"]["template"]["spec"]["containers"]
                         for pp in c.get("ports", [])}
                if tp not in names:
                    fail(f"Service {name}: targetPort {tp} is not a container port name")
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        hit = pods_of(pdb["spec"]["selector"]["matchLabels"])
        if len(hit) != 1:
            fail(f"PodDisruptionBudget {name} selects {hit}, expected one Deployment")
        if pdb["spec"].get("minAvailable") != 1:
            fail(f"PodDisruptionBudget {name}: minAvailable is not 1")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["kind"] != "Deployment" or ref["name"] not in deployments:
            fail(f"HPA {name} targets missing {ref['kind']}/{ref['name']}")
        if (hpa["spec"].get("minReplicas"), hpa["spec"].get("maxReplicas")) != (2, 10):
            fail(f"HPA {name}: replicas are not 2..10")
        if not any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]):
            fail(f"HPA {name} does not scale on CPU")
    secret = by_kind.get("Secret", {}).get("mitra-secrets", {})
    for var in ("DATABASE_URL", "REDIS_URL", "MITRA_ADMIN_TOKEN", "MITRA_LINK_KEYS"):
        if var not in secret.get("stringData", {}) and var not in secret.get("data", {}):
            fail(f"Secret mitra-secrets has no {var}")
    done("kubernetes semantics")


def github_slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def cmd_runbooks():
    readme = os.path.join(DEPLOY, "README.md")
    with open(readme) as f:
        text = f.read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors = {github_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, re.M)}
    alerts = [r for r in load_rules(ALERTS) if "alert" in r]
    names = set()
    for r in alerts:
        names.add(r["alert"])
        link = r.get("annotations", {}).get("runbook", "")
        if not link.startswith("deploy/README.md#"):
            fail(f"alert {r['alert']} has no runbook link to deploy/README.md")
            continue
        if link.split("#", 1)[1] not in anchors:
            fail(f"alert {r['alert']}: runbook anchor #{link.split('#', 1)[1]} is not a heading "
                 "of deploy/README.md")
        for key in ("summary", "description"):
            if not r.get("annotations", {}).get(key):
                fail(f"alert {r['alert']} has no {key}")
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            fail(f"alert {r['alert']} has no severity label")
    print(f"  {len(alerts)} alert rules ({len(names)} alerts) link to existing runbook sections")
    done("runbooks")


def cmd_prom_k8s_config(out):
    src = os.path.join(DEPLOY, "prometheus", "prometheus-kubernetes.yml")
    doc = load_yaml(src)
    for sc in doc.get("scrape_configs", []):
        if "kubernetes_sd_configs" in sc:
            if not sc["kubernetes_sd_configs"] or "role" not in sc["kubernetes_sd_configs"][0]:
                fail(f"{sc['job_name']}: kubernetes_sd_configs without a role")
            del sc["kubernetes_sd_configs"]
            sc["static_configs"] = [{"targets": ["placeholder:8080"]}]
    # Rule paths stay resolvable from the temporary copy.
    doc["rule_files"] = [os.path.join(DEPLOY, "prometheus", p) for p in doc.get("rule_files", [])]
    with open(out, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    done("prometheus-kubernetes.yml (static copy written)")


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    table = {
        "dashboard": cmd_dashboard,
        "metric-names": cmd_metric_names,
        "compose": cmd_compose,
        "kustomize-fallback": cmd_kustomize_fallback,
        "k8s": cmd_k8s,
        "prom-k8s-config": cmd_prom_k8s_config,
        "runbooks": cmd_runbooks,
    }
    if cmd not in table:
        print(f"unknown subcommand {cmd}\n{__doc__}")
        return 2
    table[cmd](*args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
