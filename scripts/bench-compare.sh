#!/usr/bin/env bash
# Compares a few short benchmarks between a base commit (BENCH_BASE,
# default HEAD~1) and the working tree with benchstat, and prints the
# comparison. It reports and never fails: on a shared two-core machine a
# single run's differences are mostly noise, and the deltas benchstat
# marks as significant are the ones to read. The two builds run in turns
# (base, head, base, head...) so that both meet the same moments of load.
set -uo pipefail
cd "$(dirname "$0")/.."
base=${BENCH_BASE:-HEAD~1}
count=${BENCH_COUNT:-6}
filter='^(BenchmarkMemoryPublish|BenchmarkRedisPublish|BenchmarkRedisConsume)$/^(raw|sdk)$'
work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/base" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
  echo "bench-compare: no commit $base to compare with (a shallow clone?); nothing compared"
  exit 0
fi
if ! git worktree add --detach --quiet "$work/base" "$base" ||
  ! (cd "$work/base" && go test -c -o "$work/base.test" ./bench/); then
  echo "bench-compare: could not build the benchmarks of $base; nothing compared"
  exit 0
fi
if ! go test -c -o "$work/head.test" ./bench/; then
  echo "bench-compare: could not build the benchmarks of the working tree; nothing compared"
  exit 0
fi
echo "bench-compare: $base ($(git rev-parse --short "$base")) against the working tree, $count runs each, in turns"
for _ in $(seq 1 "$count"); do
  for side in base head; do
    (cd bench && "$work/$side.test" -test.run '^$' -test.bench "$filter" -test.benchtime 20000x -test.benchmem \
      -test.timeout 10m 2>&1 | grep -E '^(Benchmark|goos|goarch|pkg|cpu)' >>"$work/$side.txt") || true
  done
done
go tool benchstat "base=$work/base.txt" "head=$work/head.txt" 2>&1 || true
exit 0
