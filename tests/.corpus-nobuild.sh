#!/usr/bin/env bash
# Replays every seed in tests/seed-corpus.txt with the release simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
true
status=0
while read -r line; do
  line="${line%%#*}"
  [ -z "${line// }" ] && continue
  read -r scenario seed rest <<<"$line"
  expect_fail=0
  args=()
  for word in $rest; do
    if [ "$word" = "--expect-fail" ]; then expect_fail=1; else args+=("$word"); fi
  done
  if ./target/release/sim --seed "$seed" --scenario "$scenario" "${args[@]}" >/tmp/concord-corpus.out 2>&1; then
    rc=0
  else
    rc=$?
  fi
  if [ "$expect_fail" = 1 ] && [ "$rc" = 0 ]; then
    echo "corpus: $scenario seed $seed ${args[*]}: expected a violation, got PASS"; status=1
  elif [ "$expect_fail" = 0 ] && [ "$rc" != 0 ]; then
    echo "corpus: $scenario seed $seed ${args[*]}: FAILED"; cat /tmp/concord-corpus.out; status=1
  else
    echo "corpus: $scenario seed $seed ${args[*]}: ok"
  fi
done < tests/seed-corpus.txt
exit $status
