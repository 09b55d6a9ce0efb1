#!/usr/bin/env bash
# Soak test (issue 6): the seed's four rows (256x50, 4kx20, 16kx10, 64kx5), each for the seed's
# 70 s, in both modes (raw TCP and STCP), against ONE stcp-server process, with the stcp-loadgen
# binary pointed at it (--target, --server-key). Not part of `cargo test`.
#
#   scripts/soak.sh                       the full soak: 8 runs of 70 s (about 10 minutes)
#   scripts/soak.sh --duration 5s         a quick check of the script itself
#
# Options:
#   --duration DUR      measured interval of every run (default 70s; loadgen units: 500ms, 70s, 2m)
#   --warmup DUR        load before each measured interval, excluded from statistics (default 2s)
#   --rows LIST         PAYLOADxCLIENTS,... (default 256x50,4kx20,16kx10,64kx5)
#   --modes LIST        tcp,stcp (default both, TCP first in each row)
#   --server-cores N    server worker threads, pinned to cores 0..N-1 (default: half the cores);
#                       the load generator runs on the other cores (taskset) when there are any
#   --rss-bound-mib M   allowed growth of the server's VmRSS from after the first run to the end
#                       (default 32)
#   --out DIR           where everything goes (default results/soak-<UTC timestamp>/)
#   --no-build          use the release binaries already in target/release
#
# What it checks, for every run: the load generator's exit status is 0 and its JSON report has
# zero errors (errors_total) and zero verify mismatches (errors.verify) and is not partial. For
# the server: its VmRSS (/proc/PID/status) is recorded at start and after every run, and at the
# end it must be within --rss-bound-mib of the value after the first run (flat memory); it must
# still be alive after the last run and stop cleanly (exit 0) on SIGTERM.
#
# Output (in --out): server.key.pub (the private key stays in a temporary folder that is
# removed at exit), server.log (its stats line every second and its exit
# summary), runs/<mode>-<row>/ (each run's JSON report and loadgen.log), rss.tsv, summary.md.
# Exit status: 0 when every check passed, 1 when one failed, 2 on bad usage or a missing tool.
# The server is stopped on exit, error or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

duration=70s
warmup=2s
rows=256x50,4kx20,16kx10,64kx5
modes=tcp,stcp
ncores=$(nproc)
server_cores=$(((ncores + 1) / 2))
rss_bound_mib=32
out=
build=1

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}
while (($#)); do
    case $1 in
    --duration) duration=${2:?--duration needs a value}; shift 2 ;;
    --warmup) warmup=${2:?--warmup needs a value}; shift 2 ;;
    --rows) rows=${2:?--rows needs a value}; shift 2 ;;
    --modes) modes=${2:?--modes needs a value}; shift 2 ;;
    --server-cores) server_cores=${2:?--server-cores needs a value}; shift 2 ;;
    --rss-bound-mib) rss_bound_mib=${2:?--rss-bound-mib needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage ;;
    *) echo "soak: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ $server_cores =~ ^[1-9][0-9]*$ ]] || { echo "soak: --server-cores must be a positive number" >&2; exit 2; }
[[ $rss_bound_mib =~ ^[0-9]+$ ]] || { echo "soak: --rss-bound-mib must be a number" >&2; exit 2; }
for m in ${modes//,/ }; do
    [[ $m == tcp || $m == stcp ]] || { echo "soak: unknown mode '$m' (tcp, stcp)" >&2; exit 2; }
done
for tool in jq awk; do
    command -v "$tool" >/dev/null || { echo "soak: needs $tool" >&2; exit 2; }
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-$repo/results/soak-$stamp}
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
echo "soak: writing into $out"

if ((build)); then
    echo "soak: cargo build --release (stcp-server, stcp-loadgen)"
    cargo build --release --quiet -p stcp-server -p stcp-loadgen --bins
fi
server_bin=$repo/target/release/stcp-server
loadgen_bin=$repo/target/release/stcp-loadgen
for b in "$server_bin" "$loadgen_bin"; do
    [[ -x $b ]] || { echo "soak: $b is missing (run without --no-build)" >&2; exit 2; }
done

# The load generator runs on the cores the server does not use, when there are any.
loadgen_prefix=()
if ((ncores > server_cores)) && command -v taskset >/dev/null; then
    loadgen_prefix=(taskset -c "$server_cores-$((ncores - 1))")
fi

server_pid=
loadgen_pid=
keydir=$(mktemp -d)
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $loadgen_pid ]] && kill -0 "$loadgen_pid" 2>/dev/null; then
        kill -TERM "$loadgen_pid" 2>/dev/null || true
        wait "$loadgen_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$keydir"
    exit "$status"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }

# The server: ephemeral loopback ports, read back from its start-up line.
"$server_bin" --listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0 --cores "$server_cores" \
    --key "$keydir/server.key" --stats >"$out/server.log" 2>&1 &
server_pid=$!
stcp_addr=
tcp_addr=
for _ in $(seq 200); do
    line=$(grep -m1 ' workers on ' "$out/server.log" || true)
    if [[ -n $line ]]; then
        stcp_addr=$(sed -E 's/.*STCP ([^ ]+) .*/\1/' <<<"$line")
        tcp_addr=$(sed -E 's/.*\| TCP ([^ ]+).*/\1/' <<<"$line")
        break
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "soak: stcp-server exited:" >&2; cat "$out/server.log" >&2; exit 1; }
    sleep 0.05
done
[[ -n $stcp_addr && -n $tcp_addr ]] || { echo "soak: stcp-server did not start" >&2; cat "$out/server.log" >&2; exit 1; }
cp "$keydir/server.key.pub" "$out/server.key.pub"
rss_start=$(rss_kib)
echo "soak: stcp-server pid $server_pid on $server_cores core(s): STCP $stcp_addr, TCP $tcp_addr; VmRSS $((rss_start / 1024)) MiB"
printf 'when\tvmrss_kib\n' >"$out/rss.tsv"
printf 'start\t%s\n' "$rss_start" >>"$out/rss.tsv"

failures=()
results=()
rss_first=
rss_last=
for row in ${rows//,/ }; do
    payload=${row%[xX]*}
    clients=${row##*[xX]}
    for mode in ${modes//,/ }; do
        name=$mode-$row
        dir=$out/runs/$name
        mkdir -p "$dir"
        args=(--mode "$mode" --payload "$payload" --clients "$clients"
            --duration "$duration" --warmup "$warmup" --quiet --out "$dir")
        if [[ $mode == stcp ]]; then
            args+=(--target "$stcp_addr" --server-key "$keydir/server.key.pub")
        else
            args+=(--target "$tcp_addr")
        fi
        echo "soak: $name: ${loadgen_prefix[*]} stcp-loadgen ${args[*]}"
        status=0
        "${loadgen_prefix[@]}" "$loadgen_bin" "${args[@]}" >"$dir/loadgen.log" 2>&1 &
        loadgen_pid=$!
        wait "$loadgen_pid" || status=$?
        loadgen_pid=
        kill -0 "$server_pid" 2>/dev/null || { failures+=("$name: the server died"); echo "soak: the server died" >&2; break 2; }
        rss=$(rss_kib)
        rss_first=${rss_first:-$rss}
        rss_last=$rss
        printf '%s\t%s\n' "$name" "$rss" >>"$out/rss.tsv"
        report=$(find "$dir" -maxdepth 1 -name '*.json' | head -n 1)
        if [[ -z $report ]]; then
            failures+=("$name: no report (exit $status)")
            results+=("| $row | $mode | - | - | - | - | - | $status | $((rss / 1024)) |")
            continue
        fi
        read -r rps mbs p99 errors verify partial < <(jq -r '[.results.requests_per_second,
            .results.throughput_mb_per_s, .results.latency.p99_us, .results.errors_total,
            .results.errors.verify, .partial] | map(tostring) | join(" ")' "$report")
        results+=("$(printf '| %s | %s | %.0f | %.1f | %.0f | %s | %s | %s | %s |' \
            "$row" "$mode" "$rps" "$mbs" "$p99" "$errors" "$verify" "$status" "$((rss / 1024))")")
        ((status == 0)) || failures+=("$name: stcp-loadgen exited $status")
        [[ $errors == 0 ]] || failures+=("$name: $errors errors")
        [[ $verify == 0 ]] || failures+=("$name: $verify verify mismatches")
        [[ $partial == false ]] || failures+=("$name: partial report")
    done
done

growth_kib=$(( ${rss_last:-0} - ${rss_first:-0} ))
if [[ -n $rss_first ]] && ((growth_kib > rss_bound_mib * 1024)); then
    failures+=("server VmRSS grew by $((growth_kib / 1024)) MiB after the first run (bound $rss_bound_mib MiB)")
fi

# Stop the server: SIGTERM, clean exit expected.
server_status=not-running
if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    server_status=0
    wait "$server_pid" || server_status=$?
    server_pid=
    [[ $server_status == 0 ]] || failures+=("stcp-server exited $server_status on SIGTERM")
fi

{
    echo "# Soak $stamp"
    echo
    echo "stcp-server: $server_cores worker(s); load generator: ${loadgen_prefix[*]:-every core}; duration $duration, warm-up $warmup"
    echo
    echo "| row | mode | requests/s | MB/s | p99 us | errors | verify | exit | server VmRSS MiB after |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${results[@]}"
    echo
    echo "server VmRSS: start $((rss_start / 1024)) MiB, after the first run $(( ${rss_first:-0} / 1024 )) MiB," \
        "at the end $(( ${rss_last:-0} / 1024 )) MiB (growth $((growth_kib / 1024)) MiB, bound $rss_bound_mib MiB)"
    echo "stcp-server on SIGTERM: exit $server_status; $(grep -m1 'summary:' "$out/server.log" | sed 's/^stcp-server: //' || true)"
    echo
    if ((${#failures[@]})); then
        echo "FAILED:"
        printf -- '- %s\n' "${failures[@]}"
    else
        echo "PASSED: zero errors and zero verify mismatches in every run; server memory flat."
    fi
} | tee "$out/summary.md"

((${#failures[@]} == 0))
