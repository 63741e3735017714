#!/usr/bin/env bash
# Regenerates internal/ocproto (opencensus-proto v0.4.1, renamed by
# scripts/protorewrite so that it links beside upstream's gen-go) and
# internal/otlpproto (the OTLP schema of go.opentelemetry.io/proto/otlp as
# pinned in scripts/protogen/go.mod, renamed by scripts/protogen) with
# pinned tools, all through the Go module proxy: no protoc. scripts/protogen
# compiles the .proto sources with github.com/bufbuild/protocompile and runs
# the plugins; the output is committed and scripts/check-generate.sh proves
# it is reproducible.
set -euo pipefail

OCPROTO_VERSION=v0.4.1
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# The generator must match the vtprotobuf runtime in go.mod (grpc v1.85.0 needs at least this one).
PROTOC_GEN_VTPROTO=github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10
FEATURES=size+marshal+unmarshal+pool+equal+clone

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/internal/ocproto}
otlp_out=${2:-$root/internal/otlpproto}
cd "$root"

command -v go >/dev/null || { echo "generate.sh: needs Go on the PATH" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # a failure here is the module proxy out of reach
  "$@" || { echo "generate.sh: '$*' failed: are the Go module proxy ($(go env GOPROXY)) and the module cache reachable?" >&2; exit 1; }
}
fetch env GOBIN="$work/bin" go install "$PROTOC_GEN_GO"
fetch env GOBIN="$work/bin" go install "$PROTOC_GEN_VTPROTO"
fetch go build -C scripts/protogen -o "$work/bin/protogen" .

gomod=github.com/zerocensus/ocagent
src=$(fetch go mod download -json "github.com/census-instrumentation/opencensus-proto@$OCPROTO_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/src
files=(
  opencensus/proto/agent/common/v1/common.proto
  opencensus/proto/agent/trace/v1/trace_service.proto
  opencensus/proto/agent/metrics/v1/metrics_service.proto
  opencensus/proto/metrics/v1/metrics.proto
  opencensus/proto/resource/v1/resource.proto
  opencensus/proto/trace/v1/trace.proto
  opencensus/proto/trace/v1/trace_config.proto
)
go run ./scripts/protorewrite "$src" "$work/proto" "${files[@]}"

# One generator request for every file of a tree: vtprotobuf treats a
# message as local (fast path) only when its package is in the same request.
"$work/bin/protogen" -out "$work/gen" -proto "$work/proto" \
  -plugin "$work/bin/protoc-gen-go=module=$gomod" \
  -plugin "$work/bin/protoc-gen-go-vtproto=module=$gomod,features=$FEATURES,pool=$gomod/internal/ocproto/**" \
  $(cd "$work/proto" && find zerocensus -name '*.proto' | sort)
"$work/bin/protogen" -out "$work/gen" \
  -plugin "$work/bin/protoc-gen-go=" \
  -plugin "$work/bin/protoc-gen-go-vtproto=features=$FEATURES,pool=$gomod/internal/otlpproto/**"

# Only generated files are replaced: tests beside them stay.
for pair in "ocproto:$out" "otlpproto:$otlp_out"; do
  tree=${pair%%:*} dst=${pair#*:}
  mkdir -p "$dst"
  find "$dst" -name '*.pb.go' -delete
  cp -r "$work/gen/internal/$tree/." "$dst/"
  echo "generated $(find "$dst" -name '*.pb.go' | wc -l) files into ${dst#$root/}"
done
