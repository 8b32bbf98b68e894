#!/usr/bin/env bash
# Prints the modes tables docs/benchmarks.md is made from: every client
# stack on every broker, in every mode, in turns, with medians and spread
# (bench/modes_test.go). It starts the services it needs when they are
# down. Flags go to the benchmark, e.g.:
#   scripts/bench-table.sh -modes.brokers redis -modes.rounds 3
# Run it on a quiet machine: a full run (5 brokers, 5 rounds) takes about
# 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh up
go test -run '^$' -bench '^BenchmarkModes$' -benchtime 1x -timeout 90m ./bench/ -args "$@" |
  grep -Ev '^(goos|goarch|pkg|cpu|BenchmarkModes|PASS|ok )'
