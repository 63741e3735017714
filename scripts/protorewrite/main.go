// Command protorewrite copies the opencensus-proto .proto files into a new
// tree under a renamed package so that the generated Go code can be linked
// beside upstream's gen-go without protobuf registration conflicts.
//
// Two rewrites, both wire-identical:
//
//  1. Renaming: the proto package opencensus.proto.X becomes
//     zerocensus.ocproto.X, import paths and file paths move from
//     opencensus/proto/... to zerocensus/ocproto/..., and go_package points
//     into this module's internal/ocproto tree.
//  2. Maps become repeated entry messages. A proto map field is encoded on the
//     wire exactly as a repeated message with key = 1 and value = 2, so the
//     bytes do not change; but a Go map is dropped by ResetVT and costs hashing
//     and allocation to refill, while a slice of pooled entries is reused.
//
// Usage: protorewrite SRC_ROOT DST_ROOT file.proto...
// where each file is relative to SRC_ROOT (e.g. opencensus/proto/trace/v1/trace.proto).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

const (
	oldPkg   = "opencensus.proto."
	newPkg   = "zerocensus.ocproto."
	oldPath  = "opencensus/proto/"
	newPath  = "zerocensus/ocproto/"
	oldGoPkg = "github.com/census-instrumentation/opencensus-proto/gen-go/"
	newGoPkg = "github.com/zerocensus/ocagent/internal/ocproto/"
)

var mapField = regexp.MustCompile(`^(\s*)map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;(.*)$`)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: protorewrite SRC_ROOT DST_ROOT file.proto...")
		os.Exit(2)
	}
	src, dst := os.Args[1], os.Args[2]
	for _, rel := range os.Args[3:] {
		if !strings.HasPrefix(rel, oldPath) {
			fail(fmt.Errorf("%s: not under %s", rel, oldPath))
		}
		in, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			fail(err)
		}
		out, err := rewrite(string(in))
		if err != nil {
			fail(fmt.Errorf("%s: %w", rel, err))
		}
		target := filepath.Join(dst, newPath+strings.TrimPrefix(rel, oldPath))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(target, []byte(out), 0o644); err != nil {
			fail(err)
		}
	}
}

func rewrite(in string) (string, error) {
	var b strings.Builder
	maps := 0
	for _, line := range strings.Split(in, "\n") {
		line = strings.ReplaceAll(line, oldGoPkg, newGoPkg)
		line = strings.ReplaceAll(line, oldPath, newPath)
		line = strings.ReplaceAll(line, oldPkg, newPkg)
		if m := mapField.FindStringSubmatch(line); m != nil {
			indent, key, val, name, num, rest := m[1], m[2], m[3], m[4], m[5], m[6]
			entry := camel(name) + "Entry"
			fmt.Fprintf(&b, "%srepeated %s %s = %s;%s\n", indent, entry, name, num, rest)
			fmt.Fprintf(&b, "%smessage %s {\n%s  %s key = 1;\n%s  %s value = 2;\n%s}\n",
				indent, entry, indent, key, indent, val, indent)
			maps++
			continue
		}
		if strings.Contains(line, "map<") {
			return "", fmt.Errorf("unrecognised map field: %q", line)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// camel follows protoc's naming of implicit map entry messages.
func camel(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		if r == '_' {
			up = true
			continue
		}
		if up && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		up = false
		b.WriteRune(r)
	}
	return b.String()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "protorewrite:", err)
	os.Exit(1)
}
