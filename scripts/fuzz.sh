#!/usr/bin/env bash
# A short, bounded fuzz run of every cargo-fuzz target in fuzz/ (for CI and
# before a push). Long campaigns: see fuzz/README.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30)
#
# Steps: lint and unit-test the fuzz crate and check its seed corpus is
# current (stable toolchain, shared target/); install cargo-fuzz if missing;
# build every target with nightly (fuzz/target/); replay every kept crash
# input in fuzz/regressions/<target>/ (each must pass); then fuzz each target
# for SECONDS_PER_TARGET from a scratch copy of fuzz/corpus/<target>/, so the
# repository stays clean. Fails on any crash, hang (-timeout) or OOM, after
# running all targets; new crash inputs are left in fuzz/artifacts/<target>/
# and printed in base64 so a CI log is enough to reproduce them.
#
# Environment:
#   STCP_FUZZ_OPTIONAL=1   no nightly toolchain (or no cargo-fuzz and no way
#                          to install it): say why and exit 0 instead of failing
#   STCP_FUZZ_TOOLCHAIN    the toolchain to fuzz with (default: nightly)
#   STCP_FUZZ_STABLE_FALLBACK=1  without that toolchain, fuzz with stable and
#                          RUSTC_BOOTSTRAP=1 (lets stable take cargo-fuzz's
#                          -Zsanitizer flag; for this test build only)
#   STCP_FUZZ_TARGETS      space-separated targets to run (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 86400)); then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET (1..86400, default 30)]" >&2
    exit 2
fi
toolchain=${STCP_FUZZ_TOOLCHAIN:-nightly}
fuzz_dir=$repo/fuzz
fuzz_target_dir=$fuzz_dir/target
# Per input: a run slower than this is reported as a hang.
input_timeout=20
# Whole run of one target: its time plus start-up, then it is killed.
run_limit=$((seconds + 120))

step() { printf '\n=== fuzz: %s ===\n' "$*"; }

skip_or_fail() {
    if [[ ${STCP_FUZZ_OPTIONAL:-0} == 1 ]]; then
        echo "fuzz: SKIPPED: $* (STCP_FUZZ_OPTIONAL=1)"
        exit 0
    fi
    echo "fuzz: error: $* (set STCP_FUZZ_OPTIONAL=1 to skip instead)" >&2
    exit 1
}

step "fuzz crate: fmt, clippy, unit tests, seed corpus current"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
# The stable build of the fuzz crate shares target/ with the workspace, so
# stcp-proto's dependencies are not built twice.
cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target --all-targets -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --target-dir target --lib
cargo run --manifest-path fuzz/Cargo.toml --target-dir target --example gen_corpus -- --check

step "toolchain"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    if [[ ${STCP_FUZZ_STABLE_FALLBACK:-0} == 1 ]] && rustup run stable rustc --version >/dev/null 2>&1; then
        echo "fuzz: no $toolchain toolchain: using stable with RUSTC_BOOTSTRAP=1 (STCP_FUZZ_STABLE_FALLBACK=1)"
        toolchain=stable
        export RUSTC_BOOTSTRAP=1
    else
        skip_or_fail "the $toolchain toolchain is not installed; cargo-fuzz needs nightly for -Zsanitizer"
    fi
fi
rustup run "$toolchain" rustc --version
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        skip_or_fail "cargo-fuzz is not installed and could not be installed"
    fi
fi
cargo fuzz --version
host=$(rustup run "$toolchain" rustc -vV | sed -n 's/^host: //p')
bin_dir=$fuzz_target_dir/$host/release

all_targets=$(cargo +"$toolchain" fuzz list)
targets=${STCP_FUZZ_TARGETS:-$all_targets}
for target in $targets; do
    if ! grep -qx "$target" <<<"$all_targets"; then
        echo "fuzz: unknown target '$target'; targets: $(tr '\n' ' ' <<<"$all_targets")" >&2
        exit 2
    fi
done

step "build (cargo +$toolchain fuzz build -O)"
# -O: release without debug assertions in dependencies; fuzz/Cargo.toml
# turns debug assertions and overflow checks back on for stcp-proto.
cargo +"$toolchain" fuzz build -O --target-dir "$fuzz_target_dir"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/stcp-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=()

# Prints the part of libFuzzer log $1 that says what went wrong: from the
# first panic, sanitizer error, hang or OOM report, with its stack.
show_failure() {
    local log=$1 first
    first=$(grep -n -m1 -E 'panicked at|ERROR: libFuzzer|==[0-9]+==ERROR|ALARM: working on the last Unit' \
        "$log" | cut -d: -f1 || true)
    if [[ -n $first ]]; then
        sed -n "$((first > 5 ? first - 5 : 1)),$((first + 150))p" "$log"
    else
        tail -n 80 "$log"
    fi
}

# Keeps the inputs libFuzzer saved in scratch dir $1 in fuzz/artifacts/$2/
# and prints them, base64-encoded, with how to reproduce and keep them.
report_artifacts() {
    local dir=$1 target=$2 file kept
    for file in "$dir"/*; do
        [[ -f $file ]] || continue
        kept=fuzz/artifacts/$target/$(basename "$file")
        cp "$file" "$kept"
        echo "fuzz: $target: input saved as $kept ($(stat -c %s "$file") bytes), base64:"
        base64 -w 76 "$file"
        echo "fuzz: reproduce: cargo +$toolchain fuzz run -O $target $kept"
        echo "fuzz: keep it:   cp $kept fuzz/regressions/$target/"
    done
}

for target in $targets; do
    bin=$bin_dir/$target
    regressions=()
    if [[ -d fuzz/regressions/$target ]]; then
        for file in fuzz/regressions/"$target"/*; do
            if [[ -f $file ]]; then
                regressions+=("$file")
            fi
        done
    fi
    step "$target: replay ${#regressions[@]} kept crash input(s)"
    if ((${#regressions[@]} > 0)); then
        log=$scratch/$target-replay.log
        if ! timeout --signal=KILL "$run_limit" "$bin" -timeout="$input_timeout" \
            "${regressions[@]}" >"$log" 2>&1; then
            show_failure "$log"
            echo "fuzz: $target: a kept crash input crashes again" >&2
            failed+=("$target (regression)")
            continue
        fi
        echo "replayed without a crash: $(grep -c '^Executed' "$log" || true)"
    fi

    step "$target: fuzz for ${seconds}s"
    corpus=$scratch/corpus-$target
    mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
    cp -R fuzz/corpus/"$target"/. "$corpus"/
    artifacts=$scratch/artifacts-$target
    mkdir -p "$artifacts"
    log=$scratch/$target.log
    status=0
    # -len_control=0: inputs may grow to -max_len at once. The default grows
    # the limit slowly from the largest seed, so a short run could never
    # append bytes to a recorded session.
    timeout --signal=KILL "$run_limit" "$bin" "$corpus" \
        -max_total_time="$seconds" -timeout="$input_timeout" -rss_limit_mb=2048 \
        -max_len=4096 -len_control=0 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >"$log" 2>&1 || status=$?
    if ((status != 0)); then
        show_failure "$log"
        report_artifacts "$artifacts" "$target"
        echo "fuzz: $target: FAILED (exit $status)" >&2
        failed+=("$target")
    else
        grep -E '^#[0-9]+ *DONE|^stat::number_of_executed_units|^stat::peak_rss_mb' "$log" || tail -n 3 "$log"
        echo "corpus: $(find fuzz/corpus/"$target" -type f | wc -l) seeds, $(find "$corpus" -type f | wc -l) after the run (scratch copy, discarded)"
    fi
done

step "result"
if ((${#failed[@]} > 0)); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ran ${seconds}s each without a crash: $(tr '\n' ' ' <<<"$targets")"
