#!/usr/bin/env bash
# Plays one Kubernetes run on this machine with the pods' own scripts, as run.sh renders them:
# the server's install-keys and server containers, LOAD_HOSTS load generator pods (the Indexed
# Job's, JOB_COMPLETION_INDEX 0..N-1), the merge Job's wait-for-reports and merge containers,
# each a separate process with the environment its manifest gives it, in a network namespace
# of its own (loopback only). What differs from a cluster: the volumes are directories (the
# scripts' /results, /etc/stcp/key, /etc/stcp/psk and /run/stcp are rewritten to them), and
# STCP_TARGET is the server's loopback address instead of the Service's name.
#
# It checks that every process exits 0, that each host wrote one report, that the merged
# report's requests are the sum of the hosts' and that it lists both hosts as sources, and
# that the server stops cleanly on SIGTERM.
#
#   play-pods.sh --binaries DIR     (stcp-server and stcp-loadgen built there; root, for the
#                                    network namespace)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# PyYAML, from the venv validate.sh makes.
py=${STCP_K8S_VENV:-$repo/target/k8s-validate-venv}/bin/python

if [[ ${1:-} != --binaries || -z ${2:-} ]]; then
    echo "usage: play-pods.sh --binaries DIR" >&2
    exit 2
fi
binaries="$(cd "$2" && pwd)"
"$py" -c 'import yaml' 2>/dev/null || {
    echo "play-pods.sh: no venv with PyYAML at $py: run validate.sh first" >&2
    exit 2
}
for program in stcp-server stcp-loadgen; do
    [[ -x $binaries/$program ]] || {
        echo "play-pods.sh: no $binaries/$program: build it first" >&2
        exit 2
    }
done

# A network namespace of our own: the server's 0.0.0.0:7443 is on its loopback only, and no
# other server on this machine is in the way.
if [[ -z ${STCP_PLAY_PODS_NETNS:-} ]]; then
    exec env STCP_PLAY_PODS_NETNS=1 unshare --net -- "$0" "$@"
fi
ip link set lo up

fail() {
    echo "play-pods.sh: FAILED: $*" >&2
    exit 1
}

root=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$root"
}
trap cleanup EXIT

hosts=2
duration=2
# STCP by default; PLAY_MODE=tcp plays the raw TCP run (no key pinned, no PSK, port 7444).
mode=${PLAY_MODE:-stcp}
# The start time: room for the server to start and the load generators to connect.
start=$(($(date +%s) + 8))
START_EPOCH=$start LOAD_HOSTS=$hosts SERVER_CPUS=1 LOADGEN_CPUS=1 CLIENTS=4 PAYLOAD=256 \
    DURATION_SECONDS=$duration GRACE_SECONDS=30 SERVER_MAX_CONNS=64 MODE=$mode \
    "$here/run.sh" render "$root/manifests"

# Each container's script and environment, paths rewritten to this run's directories.
mkdir -p "$root/results" "$root/key" "$root/psk" "$root/containers"
"$py" - "$root" <<'PY'
import glob, os, shlex, sys
import yaml

root = sys.argv[1]
paths = {"/results": f"{root}/results", "/etc/stcp/key": f"{root}/key",
         "/etc/stcp/psk": f"{root}/psk"}
for path in sorted(glob.glob(f"{root}/manifests/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        # One emptyDir per pod: the pod's name (and a load generator's index, which its
        # script expands).
        run_dir = f"{root}/run-{doc['metadata']['labels']['app.kubernetes.io/name']}"
        if doc["spec"].get("completionMode") == "Indexed":
            run_dir += "-$JOB_COMPLETION_INDEX"
        for c in pod.get("initContainers", []) + pod["containers"]:
            script = c["command"][-1]
            for old, new in paths.items():
                script = script.replace(old, new)
            script = script.replace("/run/stcp", run_dir)
            name = f"{doc['metadata']['labels']['app.kubernetes.io/name']}.{c['name']}"
            with open(f"{root}/containers/{name}.sh", "w") as f:
                f.write(script)
            with open(f"{root}/containers/{name}.env", "w") as f:
                for e in c.get("env", []):
                    f.write(f"{e['name']}={shlex.quote(e['value'])}\n")
PY
ls "$root/containers"

export PATH="$binaries:$PATH"
# The Secrets: a fresh key and PSK, as README.md makes them, mode 0440 as the volumes have them.
stcp-server keygen "$root/key/server.key" >/dev/null
stcp-server genpsk "$root/psk/stcp.psk"
chmod 0440 "$root/key/server.key" "$root/key/server.key.pub" "$root/psk/stcp.psk"
mkdir -p "$root/run-stcp-server" "$root/run-stcp-merge"
for ((i = 0; i < hosts; i++)); do mkdir -p "$root/run-stcp-loadgen-$i"; done

# Becomes container $1 (pod.container): its script under /bin/sh with its environment and any
# extra NAME=VALUE after it. Run it in the background (launch ... &: $! is then the script's own
# process, as PID 1 of a pod) or in a subshell ((launch ...)).
launch() {
    local name=$1
    shift
    set -a
    # shellcheck disable=SC1090
    source "$root/containers/$name.env"
    set +a
    exec env "$@" /bin/sh -c "$(cat "$root/containers/$name.sh")"
}

echo "--- server pod"
(launch stcp-server.install-keys) || fail "the server's install-keys container"
launch stcp-server.stcp-server >"$root/server.log" 2>&1 &
server_pid=$!
# The readiness probe: the raw TCP port accepts.
for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/7444) 2>/dev/null; then break; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$root/server.log" >&2; fail "the server exited"; }
    sleep 0.1
done
head -n 3 "$root/server.log"

echo "--- the merge Job, and $hosts load generator pods, all at once"
launch stcp-merge.wait-for-reports >"$root/merge-wait.log" 2>&1 &
wait_pid=$!
pids=()
for ((i = 0; i < hosts; i++)); do
    launch stcp-loadgen.stcp-loadgen JOB_COMPLETION_INDEX=$i STCP_TARGET="127.0.0.1:$([[ $mode == stcp ]] && echo 7443 || echo 7444)" \
        >"$root/loadgen-$i.log" 2>&1 &
    pids+=($!)
done
for ((i = 0; i < hosts; i++)); do
    status=0
    wait "${pids[$i]}" || status=$?
    echo "load generator $i exited with $status"
    sed 's/^/    /' "$root/loadgen-$i.log" | tail -n 12
    [[ $status -eq 0 ]] || fail "load generator $i"
done
status=0
wait "$wait_pid" || status=$?
cat "$root/merge-wait.log"
[[ $status -eq 0 ]] || fail "the merge's wait-for-reports"
(launch stcp-merge.merge) >"$root/merge.log" 2>&1 || { cat "$root/merge.log" >&2; fail "the merge"; }
cat "$root/merge.log"

echo "--- server stop"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
tail -n 2 "$root/server.log"
server_pid=""
[[ $status -eq 0 ]] || fail "the server exited with $status on SIGTERM"

echo "--- the merged report against the hosts'"
"$py" - "$root/results" "$hosts" <<'PY'
import glob, json, sys

results, hosts = sys.argv[1], int(sys.argv[2])
runs = [d for d in glob.glob(f"{results}/*") if not d.endswith(".done")]
if len(runs) != 1:
    sys.exit(f"FAILED: expected one run directory in {results}, found {runs}")
run = runs[0]
parts = []
for i in range(hosts):
    reports = glob.glob(f"{run}/host-{i}/*.json")
    if len(reports) != 1:
        sys.exit(f"FAILED: host-{i} wrote {reports}, not one report")
    parts.append(json.load(open(reports[0])))
merged_files = glob.glob(f"{run}/merged/*.json")
if len(merged_files) != 1:
    sys.exit(f"FAILED: the merge wrote {merged_files}, not one report")
merged = json.load(open(merged_files[0]))
total = sum(p["results"]["requests"] for p in parts)
print(f"hosts' requests {[p['results']['requests'] for p in parts]}, merged {merged['results']['requests']}")
# Shown, not judged: how far each host's measured interval began from --start-at.
print("start skew (us):", [(p.get("start") or {}).get("skew_us") for p in parts])
if merged["results"]["requests"] != total or total == 0:
    sys.exit(f"FAILED: merged requests {merged['results']['requests']} != sum {total}")
if len(merged["sources"]) != hosts:
    sys.exit(f"FAILED: the merged report lists {len(merged['sources'])} sources, not {hosts}")
if merged["partial"] or any(p["partial"] for p in parts):
    sys.exit("FAILED: a partial report")
print("merged report: requests are the sum of the hosts', both hosts are its sources")
PY
echo "play-pods: ok"
