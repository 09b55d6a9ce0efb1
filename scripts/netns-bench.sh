#!/usr/bin/env bash
# netns-bench.sh: the suite beyond loopback. Creates two network namespaces joined by a veth pair
# (server side 169.254.77.1/30, client side 169.254.77.2/30; link-local, so nothing else on the
# machine is touched), optionally rate-limits both veth ends with `tc ... tbf`, runs stcp-server
# (release build) in one namespace and `stcp-loadgen suite --target ... --tcp-target ...` in the
# other, then removes everything it created (processes, namespaces, veth pair, temporary files),
# also when interrupted (SIGINT, SIGTERM) or when the time limit strikes.
#
# Usage: sudo scripts/netns-bench.sh [OPTIONS] [-- SUITE OPTIONS]
#   --rate R          tbf rate on both veth ends (tc units: 1gbit, 500mbit); default: no limit
#   --burst B         tbf burst (default 1mb)
#   --latency L       tbf latency (default 50ms)
#   --mtu N           MTU of both veth ends (default: the kernel's, 1500)
#   --out DIR         suite output directory (default results/netns-<UTC>[-<rate>])
#   --time-limit S    stop the suite after S seconds (default 3600); it then writes partial reports
#   --no-build        use target/release binaries as they are
# Everything after `--` goes to `stcp-loadgen suite` (for example --duration 3s --rows 256x50).
#
# Example: sudo scripts/netns-bench.sh --rate 1gbit -- --duration 10s --repeat 3
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RATE="" BURST="1mb" LATENCY="50ms" MTU="" OUT="" TIME_LIMIT=3600 BUILD=1
SUITE_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift 2 ;;
        --burst) BURST="$2"; shift 2 ;;
        --latency) LATENCY="$2"; shift 2 ;;
        --mtu) MTU="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --time-limit) TIME_LIMIT="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --) shift; SUITE_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "netns-bench: unknown option $1 (suite options go after --)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "netns-bench: needs root (network namespaces, veth, tc)" >&2
    exit 2
fi

# Names unique to this run, so that two runs never touch each other's namespaces.
ID=$$
NS_SRV="stcp-srv-$ID"
NS_CLI="stcp-cli-$ID"
VETH_SRV="stcpvs$ID"
VETH_CLI="stcpvc$ID"
SRV_ADDR=169.254.77.1
CLI_ADDR=169.254.77.2
STCP_PORT=7443
TCP_PORT=7444
TMP=""
SERVER_PID=""
SUITE_PID=""

log() { printf 'netns-bench: %s\n' "$*" >&2; }

# Stops a process we started: SIGTERM (SIGINT for the suite, so it writes its partial report),
# then SIGKILL after a grace period.
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
    stop_process "$SUITE_PID" INT 15
    stop_process "$SERVER_PID" TERM 5
    # Anything still running inside our namespaces was started by this script.
    for ns in "$NS_SRV" "$NS_CLI"; do
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                kill -KILL "$pid" 2>/dev/null || true
            done
            ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
        fi
    done
    # Deleting a namespace destroys the veth end inside it and with it the pair; in case the pair
    # was left in the root namespace by a failure half-way, remove it there too.
    ip link del "$VETH_SRV" 2>/dev/null || true
    ip link del "$VETH_CLI" 2>/dev/null || true
    [ -n "$TMP" ] && rm -rf "$TMP"
    log "cleaned up (namespaces $NS_SRV and $NS_CLI, veth $VETH_SRV/$VETH_CLI, processes, $TMP)"
    exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

if [ "$BUILD" -eq 1 ]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet -p stcp-server -p stcp-loadgen)
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
for b in stcp-server stcp-loadgen; do
    [ -x "$BIN/$b" ] || { log "$BIN/$b not found (build it, or drop --no-build)"; exit 4; }
done
TMP="$(mktemp -d "/tmp/stcp-netns-$ID.XXXXXX")"

if [ -z "$OUT" ]; then
    OUT="$ROOT/results/netns-$(date -u +%Y%m%dT%H%M%SZ)${RATE:+-$RATE}"
fi
mkdir -p "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"

log "namespaces $NS_SRV ($SRV_ADDR) and $NS_CLI ($CLI_ADDR), veth $VETH_SRV <-> $VETH_CLI"
ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
ip link add "$VETH_SRV" netns "$NS_SRV" type veth peer name "$VETH_CLI" netns "$NS_CLI"
for side in "$NS_SRV $VETH_SRV $SRV_ADDR" "$NS_CLI $VETH_CLI $CLI_ADDR"; do
    read -r ns dev addr <<<"$side"
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$addr/30" dev "$dev"
    [ -n "$MTU" ] && ip -n "$ns" link set dev "$dev" mtu "$MTU"
    ip -n "$ns" link set dev "$dev" up
    if [ -n "$RATE" ]; then
        tc -n "$ns" qdisc add dev "$dev" root tbf rate "$RATE" burst "$BURST" latency "$LATENCY"
    fi
done
if [ -n "$RATE" ]; then
    log "both veth ends limited: tbf rate $RATE burst $BURST latency $LATENCY"
fi

# Cores: the server's workers on the first half (as the embedded server), the load generator on the rest.
CORES="$(nproc)"
SERVER_CORES=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
if [ "$CORES" -ge 2 ]; then
    CLIENT_CPUS="$SERVER_CORES-$((CORES - 1))"
else
    CLIENT_CPUS="0"
fi

# The server and the suite run in sessions of their own: Ctrl-C on the terminal reaches this script
# only, which then stops the suite (one SIGINT: it writes its partial reports) before the server.
setsid ip netns exec "$NS_SRV" "$BIN/stcp-server" \
    --listen "$SRV_ADDR:$STCP_PORT" --tcp-listen "$SRV_ADDR:$TCP_PORT" \
    --key "$TMP/server.key" --cores "$SERVER_CORES" --no-stats \
    >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    if [ -s "$TMP/server.key.pub" ] &&
        ip netns exec "$NS_SRV" ss -Hltn "sport = :$TCP_PORT" | grep -q . &&
        ip netns exec "$NS_SRV" ss -Hltn "sport = :$STCP_PORT" | grep -q .; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "stcp-server exited:"; cat "$TMP/server.log" >&2; exit 4; }
    sleep 0.1
done
ip netns exec "$NS_SRV" ss -Hltn "sport = :$STCP_PORT" | grep -q . ||
    { log "stcp-server is not listening after 10 s:"; cat "$TMP/server.log" >&2; exit 4; }
log "stcp-server (pid $SERVER_PID, $SERVER_CORES core(s)) listening on $SRV_ADDR:$STCP_PORT (STCP) and :$TCP_PORT (TCP)"

mkdir -p "$OUT"
{
    echo "netns-bench.sh run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "server namespace: $NS_SRV, $VETH_SRV $SRV_ADDR/30, stcp-server --cores $SERVER_CORES (pinned from core 0)"
    echo "client namespace: $NS_CLI, $VETH_CLI $CLI_ADDR/30, stcp-loadgen under taskset -c $CLIENT_CPUS"
    echo "veth mtu: $(ip -n "$NS_SRV" -o link show dev "$VETH_SRV" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')"
    if [ -n "$RATE" ]; then
        echo "tbf on both ends: rate $RATE burst $BURST latency $LATENCY"
    else
        echo "tbf: none (veth at full speed)"
    fi
    echo "suite options: ${SUITE_ARGS[*]:-(defaults)}"
} >"$OUT/netns-setup.txt"

log "suite into $OUT (time limit ${TIME_LIMIT}s)"
set +e
setsid timeout --signal=INT --kill-after=30 "$TIME_LIMIT" \
    ip netns exec "$NS_CLI" taskset -c "$CLIENT_CPUS" "$BIN/stcp-loadgen" suite \
    --target "$SRV_ADDR:$STCP_PORT" --tcp-target "$SRV_ADDR:$TCP_PORT" \
    --server-key "$TMP/server.key.pub" --out "$OUT" "${SUITE_ARGS[@]}" &
SUITE_PID=$!
wait "$SUITE_PID"
STATUS=$?
SUITE_PID=""
set -e
if [ "$STATUS" -eq 124 ]; then
    log "the suite hit the time limit (${TIME_LIMIT}s)"
fi
log "suite exit status $STATUS; reports in $OUT"
exit "$STATUS"
