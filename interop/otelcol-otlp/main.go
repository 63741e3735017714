// Command otelcol-otlp is a minimal current OpenTelemetry Collector
// (v0.165.0) used by the interop tests: the OTLP receiver, the debug
// exporter, and jsonl, an exporter of this file that writes every batch as
// OTLP JSON, one object per line, configured through the env and file
// confmap providers. Its own module, because a module holds one version of
// the Collector's modules and interop/ pins v0.133.0 for the OpenCensus
// receiver.
//
// Why jsonl and not the contrib file exporter: the Go module proxy serves no
// contrib fileexporter release newer than v0.161.0 that builds (later ones
// need packages it does not serve), and a module can hold only one release
// of the core modules. jsonl writes what fileexporter's default (format:
// json) writes, ptrace/pmetric's JSONMarshaler output and a newline, but
// synchronously: a batch is on disk (in the page cache) before the
// receiver answers, so a Collector killed with SIGKILL has written every
// batch it acknowledged.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
)

// version is the Collector release this binary is built from (go.mod).
const version = "0.165.0"

func factories() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return f, err
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](newJSONLFactory(), debugexporter.NewFactory()); err != nil {
		return f, err
	}
	// Current releases need a telemetry factory (v0.133.0 did not).
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}

// jsonlConfig is the jsonl exporter's configuration.
type jsonlConfig struct {
	Path string `mapstructure:"path"`
}

func (c *jsonlConfig) Validate() error {
	if c.Path == "" {
		return fmt.Errorf("jsonl: path is required")
	}
	return nil
}

func newJSONLFactory() exporter.Factory {
	// One file per path, shared by the traces and metrics pipelines.
	var (
		mu    sync.Mutex
		files = map[string]*jsonl{}
	)
	get := func(cfg component.Config) *jsonl {
		path := cfg.(*jsonlConfig).Path
		mu.Lock()
		defer mu.Unlock()
		if files[path] == nil {
			files[path] = &jsonl{path: path}
		}
		return files[path]
	}
	return exporter.NewFactory(component.MustNewType("jsonl"),
		func() component.Config { return &jsonlConfig{} },
		exporter.WithTraces(func(_ context.Context, _ exporter.Settings, cfg component.Config) (exporter.Traces, error) {
			return get(cfg), nil
		}, component.StabilityLevelDevelopment),
		exporter.WithMetrics(func(_ context.Context, _ exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
			return get(cfg), nil
		}, component.StabilityLevelDevelopment))
}

// jsonl appends each batch to its file as one line of OTLP JSON.
type jsonl struct {
	path string
	mu   sync.Mutex
	f    *os.File
	refs int // started pipelines using the file
}

func (j *jsonl) Start(context.Context, component.Host) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		j.f = f
	}
	j.refs++
	return nil
}

func (j *jsonl) Shutdown(context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.refs--; j.refs > 0 || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

func (j *jsonl) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (j *jsonl) ConsumeTraces(_ context.Context, td ptrace.Traces) error {
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return err
	}
	return j.write(b)
}

func (j *jsonl) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		return err
	}
	return j.write(b)
}

// write appends one line with a single write(2): the receiver answers only
// after it returns.
func (j *jsonl) write(b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("jsonl: %s is not open", j.path)
	}
	_, err := j.f.Write(append(b, '\n'))
	return err
}

func main() {
	settings := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-otlp",
			Description: "OpenTelemetry Collector with the OTLP receiver, for zerocensus/ocagent interop tests",
			Version:     version,
		},
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(settings).Execute(); err != nil {
		log.Fatal(err)
	}
}
