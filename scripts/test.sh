#!/usr/bin/env bash
# Runs every check and test of the module: formatting, go vet, and
# go test -race over all packages. It starts the local services the tests
# need when they are down (see scripts/services.sh). Under CI=true a test
# whose broker cannot be reached fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/services.sh ]; then
  scripts/services.sh up
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change these files (run: gofmt -w .):" >&2
  echo "$unformatted" >&2
  exit 1
fi

go vet ./...
# -p 1: packages run one at a time, because some tests restart a shared
# broker (RabbitMQ) and must not pull it from under another package's tests.
go test -race -count=1 -p 1 -timeout 20m ./... "$@"
