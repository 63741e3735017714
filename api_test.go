package ocagent

import (
	"bufio"
	"bytes"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// publicPackages are the packages users may import: their exported API may
// name only public types (the standard library, OpenCensus, gRPC, protobuf
// and their own), never one from an internal/ package.
var publicPackages = []string{".", "./pool", "./fastconv", "./stream", "./stream/..."}

// TestPublicAPINamesNoInternalType reads the compiled export data of every
// public package (go list -export; the gc importer, no extra dependency) and
// walks the types of every exported identifier: functions' signatures,
// exported fields and methods, type parameters' constraints.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the packages' export data")
	}
	args := append([]string{"list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}\t{{.DepOnly}}"}, publicPackages...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	var roots []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		exports[f[0]] = f[1]
		if f[2] == "false" {
			roots = append(roots, f[0])
		}
	}
	if len(roots) < 5 {
		t.Fatalf("found only %v", roots)
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) { return os.Open(exports[path]) })
	for _, path := range roots {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, name := range pkg.Scope().Names() {
			obj := pkg.Scope().Lookup(name)
			if !obj.Exported() {
				continue
			}
			w := &apiWalker{seen: map[types.Type]bool{}}
			w.walk(obj.Type(), path+"."+name)
			for _, bad := range w.bad {
				t.Errorf("%s", bad)
			}
		}
	}
}

type apiWalker struct {
	seen map[types.Type]bool
	bad  []string
}

func (w *apiWalker) walk(typ types.Type, where string) {
	if typ == nil || w.seen[typ] {
		return
	}
	w.seen[typ] = true
	switch t := typ.(type) {
	case *types.Named:
		if p := t.Obj().Pkg(); p != nil && isInternal(p.Path()) {
			w.bad = append(w.bad, where+" names "+p.Path()+"."+t.Obj().Name())
			return
		}
		for i := range t.TypeArgs().Len() {
			w.walk(t.TypeArgs().At(i), where)
		}
		if p := t.Obj().Pkg(); p == nil || !strings.HasPrefix(p.Path(), "github.com/zerocensus/ocagent") {
			return // a foreign public type: its own API is its business
		}
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
		w.walk(t.Underlying(), where)
	case *types.Alias:
		w.walk(types.Unalias(t), where)
	case *types.Pointer:
		w.walk(t.Elem(), where)
	case *types.Slice:
		w.walk(t.Elem(), where)
	case *types.Array:
		w.walk(t.Elem(), where)
	case *types.Map:
		w.walk(t.Key(), where)
		w.walk(t.Elem(), where)
	case *types.Chan:
		w.walk(t.Elem(), where)
	case *types.Signature:
		for _, tps := range []*types.TypeParamList{t.TypeParams(), t.RecvTypeParams()} {
			for i := range tps.Len() {
				w.walk(tps.At(i).Constraint(), where)
			}
		}
		w.walk(t.Params(), where)
		w.walk(t.Results(), where)
	case *types.Tuple:
		for i := range t.Len() {
			w.walk(t.At(i).Type(), where)
		}
	case *types.Struct:
		for i := range t.NumFields() {
			if f := t.Field(i); f.Exported() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Interface:
		for i := range t.NumMethods() {
			if m := t.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
		for i := range t.NumEmbeddeds() {
			w.walk(t.EmbeddedType(i), where)
		}
	case *types.Union:
		for i := range t.Len() {
			w.walk(t.Term(i).Type(), where)
		}
	case *types.TypeParam:
		w.walk(t.Constraint(), where)
	}
}

// isInternal reports whether path is one of this module's internal packages.
func isInternal(path string) bool {
	return strings.HasPrefix(path, "github.com/zerocensus/ocagent/") && strings.Contains(path+"/", "/internal/")
}
