#!/usr/bin/env bash
# Proves internal/ocproto and internal/otlpproto are exactly what scripts/generate.sh makes with the
# pinned tools: regenerates into a scratch tree and fails on any difference.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$root/scripts/generate.sh" "$scratch/ocproto" "$scratch/otlpproto" >/dev/null
for tree in ocproto otlpproto; do
  if ! diff -r -x '*_test.go' "$root/internal/$tree" "$scratch/$tree"; then
    echo "check-generate: internal/$tree differs from scripts/generate.sh output; run make generate and commit" >&2
    exit 1
  fi
done
echo "check-generate: internal/ocproto and internal/otlpproto are reproducible"
