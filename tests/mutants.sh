#!/usr/bin/env bash
# Mutation testing of the state store and the Raft glue (issue 8, item 9): cargo-mutants mutates
# node/src/state/ and node/src/raft/ one change at a time and runs a short simulator sweep against
# each mutant. A mutant is caught when the sweep fails (a seed's checker reports a violation, the
# agent panics), times out, or does not build. Not in CI and not part of `cargo test`: run it by hand.
#
#   tests/mutants.sh                      # every mutant (749; more than a day)
#   tests/mutants.sh --shard 0/10         # a deterministic tenth
#   tests/mutants.sh -F 'kv\.rs'          # only mutants whose name matches
#                                         (cargo-mutants 27.1 lets every "delete field" mutant
#                                         through -F/-E; --shard and -f select them correctly)
#   CONCORD_MUTANTS_SEEDS=5 tests/mutants.sh ...   # seeds per scenario (default 3)
#
# Needs `cargo install cargo-mutants --locked`. The sweep is `every_scenario_passes_a_small_sweep`
# in tests/tests/sim_sweep.rs (seeds 1..=N of every registered scenario, in-process, release
# build). Mutants are applied in place (cargo-mutants restores each file after its mutant), so the
# already-built release target/ is reused and only the workspace crates rebuild, incrementally.
# The baseline is skipped because cargo-mutants 27 builds and tests it with the mutated package
# (node) rather than --test-package; the sweep itself is tests/tests/sim_sweep.rs, green in CI.
# Do not edit the tree while it runs. Results land in mutants.out/ (under $CONCORD_MUTANTS_OUT if
# set); the table is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
# Incremental release builds of the workspace crates only (registry crates are never incremental,
# so the built dependencies stay valid): a mutant then costs a partial rebuild, not a full one.
export CARGO_PROFILE_RELEASE_INCREMENTAL=true
export CONCORD_SIM_SEEDS="${CONCORD_MUTANTS_SEEDS:-3}"

outdir="${CONCORD_MUTANTS_OUT:-.}"
status=0
cargo mutants --in-place --profile release \
  -f 'node/src/state/*.rs' -f 'node/src/raft/*.rs' \
  --test-package tests \
  --timeout "${CONCORD_MUTANTS_TIMEOUT:-300}" --build-timeout "${CONCORD_MUTANTS_BUILD_TIMEOUT:-1200}" \
  --baseline skip --no-shuffle --output "$outdir" \
  "$@" \
  -- --test sim_sweep -- --exact every_scenario_passes_a_small_sweep || status=$?
# cargo-mutants exits 2 when mutants were missed, 3 on timeouts: the table below is the result.

out="$outdir/mutants.out"
count() { if [ -f "$out/$1.txt" ]; then grep -c . "$out/$1.txt" || true; else echo 0; fi; }
caught=$(count caught); missed=$(count missed); timeout=$(count timeout); unviable=$(count unviable)
tested=$((caught + missed + timeout))
echo
echo "mutants  caught  missed  timeout  unviable  kill-rate"
if [ "$tested" -gt 0 ]; then
  rate=$(awk -v k=$((caught + timeout)) -v n="$tested" 'BEGIN { printf "%.1f%%", 100 * k / n }')
else
  rate="n/a"
fi
printf '%7d  %6d  %6d  %7d  %8d  %9s\n' "$((tested + unviable))" "$caught" "$missed" "$timeout" "$unviable" "$rate"
echo "(kill rate = (caught + timeout) / (caught + missed + timeout); unviable mutants do not build)"
if [ "$missed" -gt 0 ]; then
  echo
  echo "missed:"
  cat "$out/missed.txt"
fi
# 0 all caught, 2 some missed, 3 some timed out (cargo-mutants' codes); anything else is an error.
exit "$status"
