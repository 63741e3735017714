#!/usr/bin/env bash
# Regenerates internal/ocproto from the .proto files of the pinned
# opencensus-proto module, renamed (see scripts/protorewrite) so that they link
# beside upstream's gen-go. Every tool is pinned; the output is committed and
# scripts/check-generate.sh proves it is reproducible.
set -euo pipefail

OCPROTO_VERSION=v0.4.1
PROTOC_VERSION="libprotoc 3.21.12"                # Debian bookworm protobuf-compiler
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# The generator must match the vtprotobuf runtime in go.mod (grpc v1.85.0 needs at least this one).
PROTOC_GEN_VTPROTO=github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@v0.6.1-0.20240319094008-0393e58bdf10

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/internal/ocproto}
otlp_out=${2:-$root/internal/otlpproto}
cd "$root"

if ! command -v protoc >/dev/null || [ "$(protoc --version)" != "$PROTOC_VERSION" ]; then
  echo "generate.sh: need protoc '$PROTOC_VERSION' (apt-get install protobuf-compiler libprotobuf-dev), have '$(protoc --version 2>/dev/null || echo none)'" >&2
  exit 1
fi
wkt=/usr/include/google/protobuf/timestamp.proto
[ -f "$wkt" ] || { echo "generate.sh: $wkt missing (apt-get install libprotobuf-dev)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

GOBIN="$work/bin" go install "$PROTOC_GEN_GO"
GOBIN="$work/bin" go install "$PROTOC_GEN_VTPROTO"

src=$(go mod download -json "github.com/census-instrumentation/opencensus-proto@$OCPROTO_VERSION" |
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

gomod=github.com/zerocensus/ocagent
mkdir -p "$work/gen"
# One protoc call for every file: vtprotobuf treats a message as local (fast
# path) only when its package is in the same generator request.
PATH="$work/bin:$PATH" protoc -I "$work/proto" -I /usr/include \
  --go_out="$work/gen" --go_opt=module=$gomod \
  --go-vtproto_out="$work/gen" --go-vtproto_opt=module=$gomod \
  --go-vtproto_opt=features=size+marshal+unmarshal+pool+equal+clone \
  --go-vtproto_opt="pool=$gomod/internal/ocproto/**" \
  $(cd "$work/proto" && find zerocensus -name '*.proto' | sort)

# Only generated files are replaced: tests beside them stay.
mkdir -p "$out"
find "$out" -name '*.pb.go' -delete
cp -r "$work/gen/internal/ocproto/." "$out/"
echo "generated $(find "$out" -name '*.go' | wc -l) files into ${out#$root/}"

# OTLP: the schema of go.opentelemetry.io/proto/otlp as pinned in
# scripts/protogen/go.mod, taken from the descriptors its packages register
# (it ships no .proto files), renamed to zerocensus.otlpproto by protogen.
(cd scripts/protogen && go run . -out "$work/otlp" \
  -plugin "$work/bin/protoc-gen-go=" \
  -plugin "$work/bin/protoc-gen-go-vtproto=features=size+marshal+unmarshal+pool+equal+clone,pool=$gomod/internal/otlpproto/**")
mkdir -p "$otlp_out"
find "$otlp_out" -name '*.pb.go' -delete
cp -r "$work/otlp/internal/otlpproto/." "$otlp_out/"
echo "generated $(find "$otlp_out" -name '*.pb.go' | wc -l) files into ${otlp_out#$root/}"
