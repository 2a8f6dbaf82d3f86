#!/usr/bin/env bash
# Builds the kcp-go reference peer into bin/kcpgo. Quiet on success.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
go build -o bin/kcpgo .
