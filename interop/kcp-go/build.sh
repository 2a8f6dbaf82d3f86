#!/usr/bin/env bash
# Builds the kcp-go reference peer into bin/kcpgo. Quiet on success.
# With --check it first runs go vet and the Go unit tests (the secure-mode test vectors of
# docs/protocol.md and the secure client's own tests, about 5 s; go caches a passing run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ "${1:-}" = "--check" ]; then
  go vet ./...
  out=$(go test ./... 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
fi
go build -o bin/kcpgo .
