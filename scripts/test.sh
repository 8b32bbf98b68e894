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
# -timeout 10m: the slowest package (conformance) takes about 3.5 minutes
# under CI; a package that hangs fails with its goroutines' stacks after 10,
# which keeps the whole run within CI's 40-minute budget.
go test -race -count=1 -p 1 -timeout 10m ./... "$@"

# A short fuzzing run of each parser that handles secrets: the password of a
# URL (or a secret key) never reaches an error or a log line. The seed
# corpus already ran above; this looks a few thousand inputs further.
# The budget is a count of inputs, not a duration: with -fuzztime 5s, Go's
# fuzzing coordinator can report "context deadline exceeded" as a failure
# when a starved worker is still mid-input as the time runs out, a race of
# its own (go.dev/issue/75804), not a finding. A count has no deadline to
# race; timeout bounds a target that hangs, which is a finding.
for pkg in ./sdk ./adapters/rabbitmq ./adapters/redis ./adapters/kafka ./adapters/nats ./adapters/internal/awsq; do
  for target in $(grep -ho '^func Fuzz[A-Za-z]*' "$pkg"/*_test.go | cut -d' ' -f2); do
    timeout 300 go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-5000x}" "$pkg"
  done
done
