// Command protogen runs protoc plugins without protoc, on the OTLP schema
// that go.opentelemetry.io/proto/otlp ships.
//
// That module ships generated Go only, no .proto files; but importing its
// packages registers their file descriptors in protoregistry.GlobalFiles.
// protogen takes them from there (the schema exactly as pinned in go.mod),
// renames them so that the generated code links beside the real otlp
// packages (proto package opentelemetry.proto.X -> zerocensus.otlpproto.X,
// files opentelemetry/proto/... -> zerocensus/otlpproto/..., go_package into
// this module's internal/otlpproto), and hands all of them to each plugin in
// one CodeGeneratorRequest (vtprotobuf treats a message as local only when
// its file is in the same request).
//
// It also compiles .proto sources without protoc (-proto DIR, with
// github.com/bufbuild/protocompile and its copies of the well-known types):
// the opencensus-proto files, once scripts/protorewrite has renamed them.
//
// Usage:
//
//	protogen -out DIR [-proto DIR file.proto...] -plugin PATH=PARAMETER [-plugin PATH=PARAMETER ...]
//
// Without -proto the request is the OTLP schema.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	collmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	oldPkg  = "opentelemetry.proto."
	newPkg  = "zerocensus.otlpproto."
	oldPath = "opentelemetry/proto/"
	newPath = "zerocensus/otlpproto/"
	goRoot  = "github.com/zerocensus/ocagent/internal/otlpproto/"
)

// roots are the files whose dependencies make up the schema we need: the two
// Export services (traces and metrics) and everything they import.
var roots = []protoreflect.FileDescriptor{
	colltracepb.File_opentelemetry_proto_collector_trace_v1_trace_service_proto,
	collmetricspb.File_opentelemetry_proto_collector_metrics_v1_metrics_service_proto,
}

type plugins []string

func (p *plugins) String() string     { return strings.Join(*p, ",") }
func (p *plugins) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	out := flag.String("out", "", "directory the generated files are written under (by their Go import path, minus the module)")
	module := flag.String("module", "github.com/zerocensus/ocagent", "Go module whose path is stripped from output file names")
	protoDir := flag.String("proto", "", "compile the .proto files named as arguments, relative to this directory, instead of the OTLP schema")
	var ps plugins
	flag.Var(&ps, "plugin", "PATH=PARAMETER of a protoc plugin to run (repeatable)")
	flag.Parse()
	if *out == "" || len(ps) == 0 || (*protoDir != "") != (flag.NArg() > 0) {
		flag.Usage()
		os.Exit(2)
	}
	var req *pluginpb.CodeGeneratorRequest
	var err error
	if *protoDir != "" {
		req, err = compile(*protoDir, flag.Args())
	} else {
		req, err = request()
	}
	if err != nil {
		fail(err)
	}
	for _, p := range ps {
		path, param, _ := strings.Cut(p, "=")
		req.Parameter = proto.String(param)
		if err := run(path, req, *out, *module); err != nil {
			fail(fmt.Errorf("%s: %w", filepath.Base(path), err))
		}
	}
}

// request collects the renamed files, dependencies first.
func request() (*pluginpb.CodeGeneratorRequest, error) {
	var files []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	var visit func(fd protoreflect.FileDescriptor)
	visit = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			visit(imports.Get(i).FileDescriptor)
		}
		files = append(files, protodesc.ToFileDescriptorProto(fd))
	}
	for _, r := range roots {
		visit(r)
	}
	req := &pluginpb.CodeGeneratorRequest{}
	for _, f := range files {
		if !strings.HasPrefix(f.GetName(), oldPath) {
			// A well-known type: passed as it is, not generated.
			req.ProtoFile = append(req.ProtoFile, f)
			continue
		}
		rename(f)
		req.ProtoFile = append(req.ProtoFile, f)
		req.FileToGenerate = append(req.FileToGenerate, f.GetName())
	}
	return req, nil
}

// compile parses and links the files (and what they import) with
// protocompile, keeping their comments for the generated code, and returns
// them as a request, dependencies first, generating only the named files.
func compile(dir string, names []string) (*pluginpb.CodeGeneratorRequest, error) {
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{dir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := c.Compile(context.Background(), names...)
	if err != nil {
		return nil, err
	}
	req := &pluginpb.CodeGeneratorRequest{FileToGenerate: names}
	seen := map[string]bool{}
	var visit func(fd protoreflect.FileDescriptor)
	visit = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			visit(imports.Get(i).FileDescriptor)
		}
		if r, ok := fd.(linker.Result); ok {
			req.ProtoFile = append(req.ProtoFile, r.FileDescriptorProto())
		} else {
			req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
		}
	}
	for _, f := range files {
		visit(f)
	}
	return req, nil
}

// rename moves a file into the zerocensus.otlpproto namespace: its name,
// package, imports, every qualified type name, and its go_package.
func rename(f *descriptorpb.FileDescriptorProto) {
	f.Name = proto.String(newPath + strings.TrimPrefix(f.GetName(), oldPath))
	f.Package = proto.String(newPkg + strings.TrimPrefix(f.GetPackage(), oldPkg))
	for i, d := range f.Dependency {
		if strings.HasPrefix(d, oldPath) {
			f.Dependency[i] = newPath + strings.TrimPrefix(d, oldPath)
		}
	}
	// go_package: internal/otlpproto/<dir of the file>, package named as
	// the otlp module names it (v1, with its own import alias per user).
	dir := strings.TrimPrefix(filepath.Dir(f.GetName()), newPath)
	if f.Options == nil {
		f.Options = &descriptorpb.FileOptions{}
	}
	f.Options.GoPackage = proto.String(goRoot + dir)
	for _, m := range f.MessageType {
		renameMessage(m)
	}
	for _, s := range f.Service {
		for _, m := range s.Method {
			m.InputType = proto.String(qualified(m.GetInputType()))
			m.OutputType = proto.String(qualified(m.GetOutputType()))
		}
	}
	// Comments are not in the registered descriptors; nothing refers to
	// positions.
	f.SourceCodeInfo = nil
}

func renameMessage(m *descriptorpb.DescriptorProto) {
	for _, fd := range m.Field {
		if fd.TypeName != nil {
			fd.TypeName = proto.String(qualified(fd.GetTypeName()))
		}
	}
	for _, n := range m.NestedType {
		renameMessage(n)
	}
}

func qualified(name string) string {
	if strings.HasPrefix(name, "."+oldPkg) {
		return "." + newPkg + strings.TrimPrefix(name, "."+oldPkg)
	}
	return name
}

// run executes one plugin on req and writes its files under out.
func run(path string, req *pluginpb.CodeGeneratorRequest, out, module string) error {
	in, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return err
	}
	var resp pluginpb.CodeGeneratorResponse
	if err := proto.Unmarshal(b, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return fmt.Errorf("plugin error: %s", resp.GetError())
	}
	for _, f := range resp.File {
		if f.InsertionPoint != nil {
			return fmt.Errorf("insertion points are not supported (%s)", f.GetName())
		}
		name := strings.TrimPrefix(f.GetName(), module+"/")
		dst := filepath.Join(out, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(f.GetContent()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "protogen:", err)
	os.Exit(1)
}
