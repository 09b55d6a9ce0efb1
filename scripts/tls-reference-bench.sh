#!/usr/bin/env bash
# TLS 1.3 through our engine against the tokio-rustls reference (stcp-e2e/examples/tokio_tls_echo.rs),
# the way issue "TLS 1.3 beside STCP" asks for it to be recorded: each server on one core
# (`taskset -c 0`, one worker / one tokio thread), `stcp-loadgen --mode tls --threads 1` on the
# other (`taskset -c 1`), the two servers interleaved row by row and round by round; requests/s
# from the load generator's report, server CPU per request from /proc/PID/stat.
#
#   scripts/tls-reference-bench.sh [SECONDS_PER_RUN] [ROUNDS]
#
# Builds the release binaries and the example first. Rows: TLS_ROWS (default
# "256x50 16384x10 65536x5 256x16n1"; a trailing nN is churn, --requests-per-conn N, and its
# figure is handshakes/s and server CPU per handshake). TLS_OUT=DIR keeps every run's report in
# DIR (one directory per run), the server CPU behind each figure (server-cpu.tsv), the machine
# (environment.txt) and the table (table.md); without it they go with a temporary directory.
# Loopback only; every run is bounded.
set -euo pipefail
# TLS_OUT is taken from the caller's directory, before the cd below.
keep=${TLS_OUT:+$(realpath -m "$TLS_OUT")}
cd "$(dirname "$0")/.."

seconds=${1:-4}
rounds=${2:-2}
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 2; }
cargo build -q --release -p stcp-server -p stcp-loadgen
cargo build -q --release -p stcp-e2e --example tokio_tls_echo
bin=target/release
ticks=$(getconf CLK_TCK)
port=${TLS_PORT:-29445}
work=$(mktemp -d)
if [[ -n $keep ]]; then
    if [[ -d $keep && -n $(ls -A "$keep") ]]; then
        echo "$keep is not empty: give TLS_OUT a new directory" >&2
        exit 2
    fi
    mkdir -p "$keep"
    {
        echo "started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "kernel: $(uname -srvm)"
        echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores"
        echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        echo "seconds per run: $seconds, rounds: $rounds"
    } >"$keep/environment.txt"
    printf 'server\trow\tround\tcpu_ticks\tclock_ticks_per_second\trate\tserver_cpu_us\n' >"$keep/server-cpu.tsv"
fi
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start SERVER: starts it on core 0 and leaves its certificate in $work/SERVER.crt
start() {
    local cert="$work/$1.crt"
    rm -f "$cert" "$work/$1-cert.key"
    case $1 in
        engine)
            taskset -c 0 "$bin/stcp-server" --cores 1 --no-stats --key "$work/engine.key" \
                --listen none --tcp-listen none --tls-listen "127.0.0.1:$port" \
                --cert "$cert" --cert-key "$work/engine-cert.key" 2>"$work/server.log" &
            ;;
        tokio)
            taskset -c 0 target/release/examples/tokio_tls_echo --listen "127.0.0.1:$port" \
                --threads 1 --cert-out "$cert" >"$work/server.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    for _ in $(seq 200); do [[ -s $cert ]] && break; sleep 0.05; done
    sleep 0.3
}

# run SERVER PAYLOAD CLIENTS ROUND [N] -> prints "rate cpu_us_per_unit"
run() {
    local server=$1 payload=$2 clients=$3 round=$4 n=${5:-}
    local out="$work/$server-$payload-$clients-$n-$RANDOM"
    [[ -n $keep ]] && out="$keep/round$round-$server-${payload}x$clients${n:+n$n}"
    local -a churn=()
    [[ -n $n ]] && churn=(--requests-per-conn "$n")
    start "$server"
    local before after
    before=$(cpu_ticks "$server_pid")
    taskset -c 1 "$bin/stcp-loadgen" --mode tls --target "127.0.0.1:$port" \
        --server-cert "$work/$server.crt" --payload "$payload" --clients "$clients" --threads 1 \
        "${churn[@]}" --warmup 1s --duration "${seconds}s" --quiet --out "$out" >/dev/null
    after=$(cpu_ticks "$server_pid")
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    local figures
    figures=$(python3 - "$out" "$before" "$after" "$ticks" "$seconds" "$n" <<'EOF'
import glob, json, sys
out, before, after, ticks, seconds, n = sys.argv[1:]
res = json.load(open(glob.glob(out + "/*.json")[0]))["results"]
errors = sum(res["errors"].values())
if errors:
    sys.exit(f"{out}: {errors} errors")
rate = res["handshakes_per_second"] if n else res["requests_per_second"]
# Server CPU over set-up + warm-up + measured interval, per unit of the measured interval scaled
# to warm-up + measured: an upper bound, the same for both servers.
cpu_s = (int(after) - int(before)) / int(ticks)
print(f"{rate:.0f} {1e6 * cpu_s / (rate * (float(seconds) + 1.0)):.1f}")
EOF
    ) || return
    if [[ -n $keep ]]; then
        read -r rate cpu_us <<<"$figures"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "${payload}x$clients${n:+n$n}" \
            "$round" "$((after - before))" "$ticks" "$rate" "$cpu_us" >>"$keep/server-cpu.tsv"
    fi
    echo "$figures"
}

read -r -a rows <<<"${TLS_ROWS:-256x50 16384x10 65536x5 256x16n1}"
declare -A result
for ((r = 0; r < rounds; r++)); do
    for row in "${rows[@]}"; do
        payload=${row%%x*}
        rest=${row#*x}
        clients=${rest%%n*}
        n=
        [[ $rest == *n* ]] && n=${rest#*n}
        order="engine tokio"
        ((r % 2)) && order="tokio engine"
        for server in $order; do
            result["$server,$row,$r"]=$(run "$server" "$payload" "$clients" "$((r + 1))" "$n")
        done
    done
done

table() {
    echo "| row | our engine (TLS) | tokio-rustls | engine/tokio | engine server µs | tokio server µs |"
    echo "|---|---:|---:|---:|---:|---:|"
    for row in "${rows[@]}"; do
        for ((r = 0; r < rounds; r++)); do
            read -r er ec <<<"${result["engine,$row,$r"]}"
            read -r tr tc <<<"${result["tokio,$row,$r"]}"
            ratio=$(awk -v a="$er" -v b="$tr" 'BEGIN {printf "%.2f", a / b}')
            echo "| $row (round $((r + 1))) | $er | $tr | $ratio | $ec | $tc |"
        done
    done
    echo
    echo "Rates are requests/s (churn rows nN: handshakes/s); µs are server CPU per request (per handshake)."
}
if [[ -n $keep ]]; then
    table | tee "$keep/table.md"
    echo "finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$keep/environment.txt"
else
    table
fi
