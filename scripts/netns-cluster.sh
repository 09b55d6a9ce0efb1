#!/usr/bin/env bash
# netns-cluster.sh: several load hosts against one server, played on this machine with network
# namespaces. Creates a switch namespace holding a bridge, one server namespace and N load
# generator namespaces, each joined to the bridge by a veth pair (link-local 169.254.78.0/24, so
# nothing else on the machine is touched). Starts stcp-server with its key in the server
# namespace and one stcp-loadgen process per generator namespace, all with the same --start-at a
# few seconds ahead, then `stcp-loadgen merge` over their output directory, then checks the merge
# independently of merge's code (examples/merge_check.rs, hdrhistogram directly): merged requests
# and bytes equal the sums of the parts, the merged percentiles are those of one histogram fed with
# every part's samples, and the series add up second by second. Fails loudly on any mismatch.
# Removes everything it created (processes, namespaces, veth pairs, bridge, temporary files) on
# every exit path, also when interrupted (SIGINT, SIGTERM) or when the time limit strikes.
#
# Usage: sudo scripts/netns-cluster.sh [OPTIONS] N SECONDS
#   N                 load generator namespaces (1 to 50)
#   SECONDS           measured interval of each generator (whole seconds)
#   --clients C       connections per generator (default 4)
#   --payload SIZE    request payload (default 256)
#   --mode M          stcp or tcp (default stcp)
#   --warmup D        warm-up of each generator (default 1s)
#   --lead S          --start-at lies S seconds ahead of the launch (default 3)
#   --out DIR         parts/, merged/ and the logs go here (default results/cluster-<UTC>-nN)
#   --debug           use the debug build (target/debug) instead of a release build
#   --no-build        use the binaries as they are
# Example: sudo scripts/netns-cluster.sh 2 5
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CLIENTS=4 PAYLOAD=256 MODE=stcp WARMUP=1s LEAD=3 OUT="" PROFILE=release BUILD=1
POSITIONAL=()
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS="$2"; shift 2 ;;
        --payload) PAYLOAD="$2"; shift 2 ;;
        --mode) MODE="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --lead) LEAD="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --debug) PROFILE=debug; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "netns-cluster: unknown option $1" >&2; exit 2 ;;
        *) POSITIONAL+=("$1"); shift ;;
    esac
done
if [ "${#POSITIONAL[@]}" -ne 2 ]; then
    echo "netns-cluster: give N (load generators) and SECONDS (measured interval); see --help" >&2
    exit 2
fi
N="${POSITIONAL[0]}" SECONDS_MEASURED="${POSITIONAL[1]}"
case "$N" in ''|*[!0-9]*) echo "netns-cluster: N must be a number, not $N" >&2; exit 2 ;; esac
case "$SECONDS_MEASURED" in ''|*[!0-9]*) echo "netns-cluster: SECONDS must be whole seconds, not $SECONDS_MEASURED" >&2; exit 2 ;; esac
case "$LEAD" in ''|*[!0-9]*) echo "netns-cluster: --lead must be whole seconds, not $LEAD" >&2; exit 2 ;; esac
if [ "$N" -lt 1 ] || [ "$N" -gt 50 ]; then
    echo "netns-cluster: N must be 1 to 50" >&2
    exit 2
fi
if [ "$SECONDS_MEASURED" -lt 1 ]; then
    echo "netns-cluster: SECONDS must be at least 1" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "netns-cluster: needs root (network namespaces, veth, bridge)" >&2
    exit 2
fi

# Names unique to this run, so that two runs never touch each other's namespaces.
ID=$$
NS_SW="stcp-sw-$ID"
NS_SRV="stcp-srv-$ID"
BRIDGE="stcpbr0"
SRV_ADDR=169.254.78.1
PORT=7443
[ "$MODE" = tcp ] && PORT=7444
TMP=""
SERVER_PID=""
GEN_PIDS=()

log() { printf 'netns-cluster: %s\n' "$*" >&2; }
gen_ns() { echo "stcp-gen$1-$ID"; }

# Stops a process we started: the signal, then SIGKILL after a grace period.
stop_process() {
    local pid="$1" signal="$2" grace="$3"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "process $pid did not stop: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${GEN_PIDS[@]}"; do
        stop_process "$pid" INT 5
    done
    stop_process "$SERVER_PID" TERM 5
    # Anything still running inside our namespaces was started by this script. Deleting a
    # namespace destroys the veth ends inside it, and with each its peer, and the bridge.
    local namespaces=("$NS_SW" "$NS_SRV")
    for i in $(seq 1 "$N"); do namespaces+=("$(gen_ns "$i")"); done
    for ns in "${namespaces[@]}"; do
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
        fi
    done
    [ -n "$TMP" ] && rm -rf "$TMP"
    log "cleaned up (namespaces $NS_SW, $NS_SRV, stcp-gen1..$N-$ID, their veth pairs and bridge, processes)"
    if [ "$status" -ne 0 ]; then
        log "FAILED (exit status $status)"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

if [ "$BUILD" -eq 1 ]; then
    log "building $PROFILE binaries"
    flag=()
    [ "$PROFILE" = release ] && flag=(--release)
    (cd "$ROOT" && cargo build "${flag[@]}" --quiet -p stcp-server -p stcp-loadgen --bins --example merge_check)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
for b in stcp-server stcp-loadgen examples/merge_check; do
    [ -x "$BIN/$b" ] || { log "$BIN/$b not found (build it, or drop --no-build)"; exit 4; }
done
TMP="$(mktemp -d "${TMPDIR:-/tmp}/stcp-cluster-$ID.XXXXXX")"

if [ -z "$OUT" ]; then
    OUT="$ROOT/results/cluster-$(date -u +%Y%m%dT%H%M%SZ)-n$N"
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ -n "$(ls -A "$OUT")" ]; then
    log "$OUT is not empty: give --out a new directory"
    exit 2
fi

# The switch: a bridge in a namespace of its own; every other namespace is one veth pair away.
log "switch namespace $NS_SW (bridge $BRIDGE), server namespace $NS_SRV ($SRV_ADDR), $N generator namespace(s)"
ip netns add "$NS_SW"
ip -n "$NS_SW" link add "$BRIDGE" type bridge
ip -n "$NS_SW" link set "$BRIDGE" up
# join NS ADDR INDEX: a veth pair from NS (eth0, ADDR/24) to the bridge (port p<INDEX>).
join() {
    local ns="$1" addr="$2" index="$3"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "stcpc${index}x$ID" netns "$ns" type veth peer name "p$index" netns "$NS_SW"
    ip -n "$ns" link set "stcpc${index}x$ID" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$NS_SW" link set "p$index" master "$BRIDGE"
    ip -n "$NS_SW" link set "p$index" up
}
join "$NS_SRV" "$SRV_ADDR" 0
for i in $(seq 1 "$N"); do
    join "$(gen_ns "$i")" "169.254.78.$((10 + i))" "$i"
done

setsid ip netns exec "$NS_SRV" "$BIN/stcp-server" \
    --listen "$SRV_ADDR:7443" --tcp-listen "$SRV_ADDR:7444" \
    --key "$TMP/server.key" --cores 1 --no-stats \
    >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    if [ -s "$TMP/server.key.pub" ] &&
        ip netns exec "$NS_SRV" ss -Hltn "sport = :$PORT" | grep -q .; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "stcp-server exited:"; cat "$OUT/server.log" >&2; exit 4; }
    sleep 0.1
done
ip netns exec "$NS_SRV" ss -Hltn "sport = :$PORT" | grep -q . ||
    { log "stcp-server is not listening after 10 s:"; cat "$OUT/server.log" >&2; exit 4; }
# Every generator reaches the server across the bridge before the clock starts (a TCP connect
# to the raw TCP port, closed at once: a clean close to the server).
for i in $(seq 1 "$N"); do
    ip netns exec "$(gen_ns "$i")" timeout 5 bash -c "exec 3<>/dev/tcp/$SRV_ADDR/7444" ||
        { log "generator $i cannot reach $SRV_ADDR across the bridge"; exit 4; }
done

# One start time for every generator, whole seconds so the series are the wall clock's own.
START_MS=$(( ($(date +%s) + LEAD + 1) * 1000 ))
START_UTC="$(date -u -d "@$((START_MS / 1000))" +%Y-%m-%dT%H:%M:%SZ)"
log "stcp-server (pid $SERVER_PID) on $SRV_ADDR:$PORT; $N generator(s) start at $START_UTC ($MODE, $PAYLOAD B x $CLIENTS clients each, ${SECONDS_MEASURED}s)"
mkdir -p "$OUT/parts"
# Bounded: the lead, the warm-up, the interval, and a generous margin to connect and drain.
LIMIT=$((LEAD + 1 + SECONDS_MEASURED + 30))
for i in $(seq 1 "$N"); do
    key=()
    [ "$MODE" = stcp ] && key=(--server-key "$TMP/server.key.pub")
    # Each generator is a host of its own: its network namespace, and a UTS namespace whose
    # hostname (stcp-gen<i>) its report records.
    setsid timeout --signal=INT --kill-after=10 "$LIMIT" \
        ip netns exec "$(gen_ns "$i")" unshare --uts \
        sh -c 'hostname "$1" && shift && exec "$@"' sh "stcp-gen$i" "$BIN/stcp-loadgen" \
        --target "$SRV_ADDR:$PORT" --mode "$MODE" "${key[@]}" \
        --payload "$PAYLOAD" --clients "$CLIENTS" --threads 1 \
        --warmup "$WARMUP" --duration "${SECONDS_MEASURED}s" \
        --start-at "$START_UTC" --out "$OUT/parts" --quiet \
        >"$OUT/gen$i.log" 2>&1 &
    GEN_PIDS+=($!)
done
failed=0
for i in $(seq 1 "$N"); do
    if ! wait "${GEN_PIDS[$((i - 1))]}"; then
        log "generator $i failed:"
        cat "$OUT/gen$i.log" >&2
        failed=1
    fi
done
GEN_PIDS=()
[ "$failed" -eq 0 ] || exit 1

# From inside the output directory, so the merged report names its sources parts/<file>, a path
# that stays true wherever the directory is copied.
cd "$OUT"
mapfile -t PARTS < <(find parts -maxdepth 1 -name '*.json' | sort)
if [ "${#PARTS[@]}" -ne "$N" ]; then
    log "expected $N reports in $OUT/parts, found ${#PARTS[@]}"
    exit 1
fi
for part in "${PARTS[@]}"; do
    python3 - "$part" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
s = r["start"]
print(f"netns-cluster: {sys.argv[1].rsplit('/', 1)[-1]}: {r['results']['requests']} requests, "
      f"started {s['actual_at']} (skew {s['skew_us']:.0f} us, threads spread {s['threads_spread_us']:.0f} us, "
      f"connected in {s['connecting_seconds'] * 1e3:.1f} ms), p99 {r['results']['latency']['p99_us']:.0f} us, "
      f"errors {r['results']['errors_total']}")
if r["partial"] or r["results"]["errors_total"]:
    sys.exit(f"netns-cluster: FAILED: {sys.argv[1]} is partial or has errors")
PY
done

"$BIN/stcp-loadgen" merge parts --out merged >merge.log 2>&1 ||
    { log "stcp-loadgen merge failed:"; cat merge.log >&2; exit 1; }
mapfile -t MERGED < <(find merged -maxdepth 1 -name 'merged-*.json')
if [ "${#MERGED[@]}" -ne 1 ]; then
    log "expected one merged report in $OUT/merged, found ${#MERGED[@]}"
    exit 1
fi
"$BIN/examples/merge_check" "${MERGED[0]}" "${PARTS[@]}" ||
    { log "FAILED: the merged report is not the sum of its parts"; exit 1; }
python3 - "${MERGED[0]}" "$N" <<'PY' >&2
import json, sys
merged, n = json.load(open(sys.argv[1])), int(sys.argv[2])
hosts = sorted(s["hostname"] for s in merged["sources"])
want = sorted(f"stcp-gen{i}" for i in range(1, n + 1))
if hosts != want:
    sys.exit(f"netns-cluster: FAILED: the merged sources name the hosts {hosts}, not {want}")
s = merged["start"]
print(f"netns-cluster: merged {len(hosts)} hosts ({', '.join(hosts)}): "
      f"{merged['results']['requests']} requests, p99 {merged['results']['latency']['p99_us']:.0f} us, "
      f"largest skew {s['skew_us']:.0f} us, every thread of every host within {s['threads_spread_us']:.0f} us")
PY
log "merged report: $OUT/${MERGED[0]}"
