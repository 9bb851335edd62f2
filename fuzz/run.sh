#!/usr/bin/env bash
# Runs every fuzz target (or those named after the time) for SECONDS each, default 15, from
# its committed seeds in seeds/<target>, and prints one line of figures per target. New
# corpus entries go to a temporary directory, so the checkout is left as it was; a crash
# stops the run with the input that caused it in artifacts/<target>/.
#
#   fuzz/run.sh              # 15 s per target (what .ci/run does when cargo-fuzz is installed)
#   fuzz/run.sh 600          # the long run SECURITY.md records
#   JOBS=2 fuzz/run.sh 600 jwt normalise
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on the stable toolchain
# without a sanitizer (`-s none`): the runtime forbids `unsafe`, and panics, overflows
# (debug assertions are on), hangs and out-of-memory failures are what is hunted.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-15}"
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
jobs="${JOBS:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo fuzz build -s none --debug-assertions

run_one() {
    local t="$1"
    mkdir -p "$work/$t"
    # -rss_limit_mb: an input that makes a target allocate over 2 GiB is a finding.
    if ! cargo fuzz run -s none --debug-assertions "$t" "$work/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        echo "fuzz/run.sh: $t FAILED:" >&2
        grep -E -A12 "panicked|ERROR|SUMMARY" "$work/$t.log" | head -40 >&2
        return 1
    fi
    local execs cov ft corpus
    execs=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$work/$t.log" | grep -Eo '[0-9]+$')
    cov=$(grep -Eo 'cov: [0-9]+' "$work/$t.log" | tail -1 | grep -Eo '[0-9]+')
    ft=$(grep -Eo 'ft: [0-9]+' "$work/$t.log" | tail -1 | grep -Eo '[0-9]+')
    corpus=$(ls "$work/$t" | wc -l)
    printf '%-16s %4ss  %12s execs  cov %6s  ft %6s  corpus %6s  0 crashes\n' \
        "$t" "$secs" "$execs" "$cov" "$ft" "$corpus"
}

status=0
pids=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=("$!")
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}" || status=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit "$status"
