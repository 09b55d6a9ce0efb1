#!/usr/bin/env bash
# Offline checks of deploy/kubernetes, no cluster needed (CI runs it):
#   1. run.sh renders the templates, with the default parameters and with the other choices
#      (tcp mode, RuntimeDefault seccomp, a named StorageClass);
#   2. every rendered manifest validates against the Kubernetes OpenAPI schemas of the oldest
#      and the newest version supported, strictly (an unknown field is an error), with the
#      kubernetes-validate package, which ships the schemas;
#   3. yamllint finds no duplicate key (a YAML parser keeps the last one silently);
#   4. the properties the README promises hold (Indexed Job, parallelism = completions, one
#      load generator per node and none on the server's, Guaranteed pods, non-root...);
#   5. the validator itself rejects a manifest with an unknown field and one with a wrong type;
#   6. the Dockerfile parses, is multi-stage, and its runtime stage is non-root and takes only
#      the two binaries;
#   7. with --binaries DIR (stcp-server and stcp-loadgen built there), every --flag the pods'
#      scripts pass appears in the --help of the program they pass it to.
# Python packages come from PyPI into a venv (STCP_K8S_VENV, default target/k8s-validate-venv).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

binaries=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --binaries)
            binaries=$2
            shift 2
            ;;
        *)
            echo "validate.sh: unknown argument $1 (usage: validate.sh [--binaries DIR])" >&2
            exit 2
            ;;
    esac
done

# The oldest Kubernetes the manifests need (backoffLimitPerIndex is GA in 1.33) and the newest
# this kubernetes-validate release knows.
k8s_versions=(1.33.0 1.37.0)
venv=${STCP_K8S_VENV:-$repo/target/k8s-validate-venv}
packages=(kubernetes-validate==1.37.0 dockerfile-parse==2.0.1 yamllint==1.38.0)

if ! "$venv/bin/python" -c 'import kubernetes_validate, dockerfile_parse, yamllint' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"
fi
py="$venv/bin/python"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "render: default parameters, and tcp / RuntimeDefault / a named StorageClass"
# A fixed start time: the render is the same on every run of this script.
START_EPOCH=1798761600 "$here/run.sh" render "$work/default"
START_EPOCH=1798761600 MODE=tcp SECCOMP_PROFILE=RuntimeDefault RESULTS_STORAGE_CLASS=nfs-client \
    LOAD_HOSTS=5 CLIENTS=800 SERVER_CPUS=16 "$here/run.sh" render "$work/other"
# Bad parameters are refused before anything is written.
for bad in LOAD_HOSTS=1 CLIENTS=5000 MODE=udp CLIENTS=ten 'IMAGE=a b' SECCOMP_PROFILE=Localhost; do
    if env "$bad" "$here/run.sh" render "$work/bad" 2>/dev/null; then
        echo "FAILED: run.sh rendered with $bad" >&2
        exit 1
    fi
done

for version in "${k8s_versions[@]}"; do
    echo "schemas: Kubernetes $version, strict"
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$work"/default/*.yaml "$work"/other/*.yaml
done

echo "yamllint: no duplicate keys, well-formed YAML"
"$venv/bin/yamllint" --strict -d '{extends: relaxed, rules: {line-length: disable}}' \
    "$work"/default "$work"/other

echo "the promised properties"
"$py" - "$work/default" "$work/other" <<'PY'
import glob, os, sys
import yaml

failures = []

def check(ok, what):
    if not ok:
        failures.append(what)

def load(directory):
    docs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                docs[(doc["kind"], doc["metadata"]["name"].split("-2")[0])] = doc
    return docs

for directory, hosts in ((sys.argv[1], 2), (sys.argv[2], 5)):
    d = load(directory)
    job = d[("Job", "stcp-loadgen")]
    merge = d[("Job", "stcp-merge")]
    server = d[("Deployment", "stcp-server")]
    ns = d[("Namespace", "stcp-bench")]
    where = os.path.basename(directory)
    js = job["spec"]
    check(js["completionMode"] == "Indexed", f"{where}: the load generators' Job is not Indexed")
    check(js["parallelism"] == js["completions"] == hosts,
          f"{where}: parallelism {js['parallelism']} / completions {js['completions']}, not {hosts}")
    check(js.get("backoffLimitPerIndex") == 0, f"{where}: a load generator could be retried")
    pod = js["template"]["spec"]
    check(pod["restartPolicy"] == "Never", f"{where}: load generator restartPolicy")
    terms = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    selectors = [t["labelSelector"]["matchLabels"] for t in terms
                 if t["topologyKey"] == "kubernetes.io/hostname"]
    run_labels = js["template"]["metadata"]["labels"]
    check(any(s.items() <= run_labels.items() for s in selectors),
          f"{where}: load generators of one run may share a node")
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    check(any(s.items() <= server_labels.items() for s in selectors),
          f"{where}: a load generator may land on the server's node")
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    check("--start-at" in pod["containers"][0]["command"][-1] and env["STCP_START_AT"].endswith("Z"),
          f"{where}: the load generators are not given one --start-at")
    merge_env = {e["name"]: e["value"] for e in merge["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    check(merge_env["STCP_LOAD_HOSTS"] == str(hosts), f"{where}: the merge waits for the wrong number of hosts")
    check(merge_env["STCP_RUN_ID"] == env["STCP_RUN_ID"], f"{where}: the merge waits for another run")
    check(server["spec"]["replicas"] == 1 and server["spec"]["strategy"]["type"] == "Recreate",
          f"{where}: more than one server at a time")
    check(ns["metadata"]["name"] == job["metadata"]["namespace"] == server["metadata"]["namespace"],
          f"{where}: objects in different namespaces")
    seccomp = pod["securityContext"]["seccompProfile"]["type"]
    level = ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    check((seccomp, level) in (("Unconfined", "privileged"), ("RuntimeDefault", "restricted")),
          f"{where}: seccomp {seccomp} under Pod Security level {level}")
    for (kind, name), doc in d.items():
        spec = doc.get("spec", {})
        podspec = spec.get("template", {}).get("spec") if kind in ("Job", "Deployment") else (
            spec if kind == "Pod" else None)
        if podspec is None:
            continue
        sc = podspec["securityContext"]
        check(sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0,
              f"{where}: {kind} {name} may run as root")
        for c in podspec.get("initContainers", []) + podspec["containers"]:
            r = c["resources"]
            check(r["requests"] == r["limits"], f"{where}: {name}/{c['name']} is not Guaranteed")
            csc = c["securityContext"]
            check(csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
                  and csc.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{where}: {name}/{c['name']} is not locked down")
        for v in podspec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                check(v["persistentVolumeClaim"]["claimName"] == d[("PersistentVolumeClaim", "stcp-results")]["metadata"]["name"],
                      f"{where}: {name} mounts an unknown claim")
    for c in [server["spec"]["template"]["spec"]["containers"][0], pod["containers"][0]]:
        cpu = c["resources"]["limits"]["cpu"]
        check(cpu.isdigit(), f"{where}: {c['name']} has CPU {cpu}, not whole CPUs")

if failures:
    sys.exit("FAILED:\n  " + "\n  ".join(failures))
print("properties: ok")
PY

echo "the validator catches broken manifests"
job="$work/default/30-loadgen-job.yaml"
sed 's/^  parallelism:/  paralelism:/' "$job" >"$work/unknown-field.yaml"
sed 's/^  parallelism: \([0-9]*\)/  parallelism: "\1"/' "$job" >"$work/wrong-type.yaml"
for broken in unknown-field wrong-type; do
    if cmp -s "$job" "$work/$broken.yaml"; then
        echo "FAILED: could not make $broken.yaml from $job" >&2
        exit 1
    fi
    if "$venv/bin/kubernetes-validate" --strict --quiet -k "${k8s_versions[0]}" "$work/$broken.yaml" >/dev/null 2>&1; then
        echo "FAILED: kubernetes-validate accepted $broken.yaml" >&2
        exit 1
    fi
done
echo "broken manifests: refused"

echo "Dockerfile"
"$py" - "$here/Dockerfile" <<'PY'
import sys
from dockerfile_parse import DockerfileParser

p = DockerfileParser(path=sys.argv[1])
instructions = p.structure
failures = []
froms = [i for i in instructions if i["instruction"] == "FROM"]
if len(froms) < 2:
    failures.append(f"{len(froms)} stage(s), not a multi-stage build")
last_from = max(i["startline"] for i in froms)
runtime = [i for i in instructions if i["startline"] > last_from]
users = [i["value"] for i in runtime if i["instruction"] == "USER"]
if not users or users[-1].split(":")[0] in ("0", "root"):
    failures.append(f"the runtime stage's user is {users[-1] if users else 'root (no USER)'}")
copies = [i["value"] for i in runtime if i["instruction"] == "COPY"]
if copies != ["--from=builder /out/stcp-server /out/stcp-loadgen /usr/local/bin/"]:
    failures.append(f"the runtime stage copies {copies}, not only the two binaries")
build = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
for needed in ("cargo build --release --locked", "-p stcp-server", "-p stcp-loadgen"):
    if needed not in build:
        failures.append(f"the builder does not run {needed!r}")
if failures:
    sys.exit("FAILED: Dockerfile: " + "; ".join(failures))
print(f"Dockerfile: {len(froms)} stages, runtime user {users[-1]}, copies the two binaries")
PY

if [[ -n $binaries ]]; then
    echo "flags: every --flag of the pods' scripts is in the --help of its program"
    "$py" - "$work/default" "$binaries" <<'PY'
import glob, os, re, subprocess, sys
import yaml

directory, binaries = sys.argv[1], sys.argv[2]

def helptext(*command):
    out = subprocess.run([os.path.join(binaries, command[0]), *command[1:], "--help"],
                         capture_output=True, text=True, check=True)
    return out.stdout

# Which program each script runs, and whose --help lists its flags.
programs = {
    "stcp-server": helptext("stcp-server"),
    "stcp-loadgen": helptext("stcp-loadgen"),
    "stcp-loadgen merge": helptext("stcp-loadgen", "merge"),
    "stcp-loadgen report": helptext("stcp-loadgen", "report"),
}
failures, checked = [], 0
for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
    for doc in yaml.safe_load_all(open(path)):
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec)
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            script = c["command"][-1]
            for line in script.splitlines():
                runs = [p for p in programs if re.search(r"(^|exec |\s)" + re.escape(p) + r"(\s|$)", line)]
                if not runs:
                    continue
                program = max(runs, key=len)
                # The flags of a call: its line, and the `set --` lines that built "$@".
                lines = [line] + [l for l in script.splitlines()
                                  if "set --" in l or l.strip().startswith("--")] if '"$@"' in line else [line]
                for flag in sorted({f for l in lines for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", l)}):
                    checked += 1
                    if not re.search(r"(?m)^\s+(-\w, )?" + re.escape(flag) + r"\b", programs[program]):
                        failures.append(f"{os.path.basename(path)} {c['name']}: {program} has no {flag}")
if failures:
    sys.exit(f"FAILED: {len(failures)} of {checked} flags unknown:\n  " + "\n  ".join(failures))
print(f"flags: {checked} checked, all known")
PY
fi

echo "deploy/kubernetes: valid"
