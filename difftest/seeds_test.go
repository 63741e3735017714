package difftest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The example programs of upstream's documentation, rebuilt in seeds/ with
// this module's import path.
var seedPrograms = []string{
	"enable_stats",
	"enable_trace",
	"end_to_end",
	"godoc_example",
	"readme_example",
	"simplest",
	"with_address",
	"with_insecure",
	"with_reconnection_period",
	"with_service_name",
}

const (
	ourImport      = `"github.com/zerocensus/ocagent"`
	upstreamImport = `"contrib.go.opencensus.io/exporter/ocagent"`
)

func goCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	cmd := exec.Command(gobin, args...)
	cmd.Dir = "." // the difftest module
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSeedsAreAllThere(t *testing.T) {
	out, err := goCmd(t, "list", "./seeds/...")
	if err != nil {
		t.Fatalf("go list ./seeds/...: %v\n%s", err, out)
	}
	var got []string
	for _, l := range strings.Fields(out) {
		got = append(got, strings.TrimPrefix(l, "github.com/zerocensus/ocagent/difftest/seeds/"))
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(seedPrograms, " ") {
		t.Errorf("seed programs: got %v, want %v", got, seedPrograms)
	}
	for _, p := range seedPrograms {
		src, err := os.ReadFile(filepath.Join("seeds", p, "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), ourImport) || strings.Contains(string(src), upstreamImport) {
			t.Errorf("seeds/%s/main.go must import %s, not %s", p, ourImport, upstreamImport)
		}
	}
}

// TestSeedsBuild proves that upstream's documented programs build unchanged
// (but for the import path) against this module.
func TestSeedsBuild(t *testing.T) {
	if out, err := goCmd(t, "build", "-o", os.DevNull, "./seeds/..."); err != nil {
		t.Fatalf("go build ./seeds/...: %v\n%s", err, out)
	}
}

// TestSeedsBuildUpstream builds the same programs with upstream's import path
// put back (through a build overlay, so nothing is copied), which shows that
// the reconstructions are upstream's programs and not adapted to ours.
func TestSeedsBuildUpstream(t *testing.T) {
	dir := t.TempDir()
	overlay := struct{ Replace map[string]string }{Replace: map[string]string{}}
	for _, p := range seedPrograms {
		path, err := filepath.Abs(filepath.Join("seeds", p, "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		up := filepath.Join(dir, p+".go")
		if err := os.WriteFile(up, []byte(strings.ReplaceAll(string(src), ourImport, upstreamImport)), 0o644); err != nil {
			t.Fatal(err)
		}
		overlay.Replace[path] = up
	}
	b, err := json.Marshal(overlay)
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := goCmd(t, "build", "-overlay", ov, "-o", os.DevNull, "./seeds/..."); err != nil {
		t.Fatalf("go build ./seeds/... with upstream's import path: %v\n%s", err, out)
	}
}
