#!/usr/bin/env bash
# Before/after comparison of two builds, the way a change is measured here: the seed's four
# rows, TCP and STCP, old and new interleaved in one run; each server pinned to core 0 and
# its matching `stcp-loadgen --threads 1` pinned to core 1; requests/s from the load
# generator's report and the server's CPU per request from /proc/PID/stat.
#
#   scripts/ab-bench.sh OLD_BIN_DIR NEW_BIN_DIR [SECONDS_PER_RUN] [ROUNDS]
#
# Each *_BIN_DIR holds stcp-server and stcp-loadgen (e.g. a `git worktree` of the commit
# before, built with `cargo build --release`, and this checkout's target/release). Prints a
# Markdown table: per row and mode, old and new req/s (median over ROUNDS) and server CPU
# per request, and new/old. Loopback only; every run is bounded by SECONDS_PER_RUN.
# AB_ROWS ("256x50 65536x5") and AB_MODES ("stcp") narrow the rows and modes.
# AB_PORT (default 27443) and the port after it are the server's STCP and TCP ports: the server
# binds with SO_REUSEPORT, so two benchmarks on one port would share each other's connections.
# AB_OLD_FLAGS and AB_NEW_FLAGS are extra flags for both binaries of that side, to compare a
# setting with one build: AB_NEW_FLAGS="--busy-poll 50us" scripts/ab-bench.sh DIR DIR.
set -euo pipefail

old=${1:?usage: scripts/ab-bench.sh OLD_BIN_DIR NEW_BIN_DIR [SECONDS] [ROUNDS]}
new=${2:?usage: scripts/ab-bench.sh OLD_BIN_DIR NEW_BIN_DIR [SECONDS] [ROUNDS]}
seconds=${3:-4}
rounds=${4:-1}
for dir in "$old" "$new"; do
    for bin in stcp-server stcp-loadgen; do
        [[ -x $dir/$bin ]] || { echo "no $bin in $dir: build it with cargo build --release" >&2; exit 2; }
    done
done
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 2; }
ticks=$(getconf CLK_TCK)
port=${AB_PORT:-27443}
work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run VERSION DIR MODE PAYLOAD CLIENTS -> prints "req_per_s cpu_us_per_req"
run() {
    local version=$1 dir=$2 mode=$3 payload=$4 clients=$5
    local key="$work/$version.key" out="$work/$version-$mode-$payload-$clients-$RANDOM"
    local flags=${AB_OLD_FLAGS:-}
    [[ $version == new ]] && flags=${AB_NEW_FLAGS:-}
    local -a extra=()
    read -r -a extra <<<"$flags"
    taskset -c 0 "$dir/stcp-server" --cores 1 --key "$key" --no-stats "${extra[@]}" \
        --listen "127.0.0.1:$port" --tcp-listen "127.0.0.1:$((port + 1))" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do [[ -f $key.pub ]] && break; sleep 0.05; done
    sleep 0.2
    local target=(--target "127.0.0.1:$port" --server-key "$key.pub")
    [[ $mode == tcp ]] && target=(--target "127.0.0.1:$((port + 1))")
    local before after
    before=$(cpu_ticks "$server_pid")
    taskset -c 1 "$dir/stcp-loadgen" "${target[@]}" "${extra[@]}" --mode "$mode" \
        --payload "$payload" --clients "$clients" --threads 1 \
        --warmup 1s --duration "${seconds}s" --quiet --out "$out" >/dev/null
    after=$(cpu_ticks "$server_pid")
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    python3 - "$out" "$before" "$after" "$ticks" "$seconds" <<'EOF'
import glob, json, sys
out, before, after, ticks, seconds = sys.argv[1:]
report = json.load(open(glob.glob(out + "/*.json")[0]))
res = report["results"]
errors = sum(res["errors"].values())
if errors:
    sys.exit(f"{out}: {errors} errors")
rps = res["requests_per_second"]
# Server CPU over warm-up + measured interval + set-up, per request of the measured interval
# scaled to the whole run: an upper bound, the same for old and new.
cpu_s = (int(after) - int(before)) / int(ticks)
total_requests = rps * (float(seconds) + 1.0)
print(f"{rps:.0f} {1e6 * cpu_s / total_requests:.2f}")
EOF
}

rows=()
for row in ${AB_ROWS:-256x50 4096x20 16384x10 65536x5}; do rows+=("${row/x/ }"); done
modes=${AB_MODES:-tcp stcp}
declare -A result
for ((r = 0; r < rounds; r++)); do
    for row in "${rows[@]}"; do
        read -r payload clients <<<"$row"
        for mode in $modes; do
            order="old new"
            ((r % 2)) && order="new old"
            for version in $order; do
                dir=$old
                [[ $version == new ]] && dir=$new
                result["$version,$mode,$payload,$r"]=$(run "$version" "$dir" "$mode" "$payload" "$clients")
            done
        done
    done
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "| row | mode | old req/s | new req/s | new/old | new/old per round (min–max) | old server µs/req | new server µs/req |"
echo "|---|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
    read -r payload clients <<<"$row"
    for mode in $modes; do
        declare -A rps=() cpu=()
        for version in old new; do
            rps[$version]=$(for ((r = 0; r < rounds; r++)); do echo "${result["$version,$mode,$payload,$r"]}" | cut -d' ' -f1; done | median)
            cpu[$version]=$(for ((r = 0; r < rounds; r++)); do echo "${result["$version,$mode,$payload,$r"]}" | cut -d' ' -f2; done | median)
        done
        ratio=$(awk -v a="${rps[new]}" -v b="${rps[old]}" 'BEGIN {printf "%.3f", a / b}')
        spread=$(for ((r = 0; r < rounds; r++)); do
            n=$(echo "${result["new,$mode,$payload,$r"]}" | cut -d' ' -f1)
            o=$(echo "${result["old,$mode,$payload,$r"]}" | cut -d' ' -f1)
            awk -v a="$n" -v b="$o" 'BEGIN {printf "%.3f\n", a / b}'
        done | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}')
        echo "| ${payload} B × ${clients} | $mode | ${rps[old]} | ${rps[new]} | $ratio | $spread | ${cpu[old]} | ${cpu[new]} |"
    done
done
