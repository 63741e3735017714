package otlpconfig

import (
	"fmt"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoad(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		s    Signal
		want string
	}{
		{"empty", nil, Traces, "{ false false false map[]  false 0s false   []   false  }"},
		{"generic http", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, Traces,
			"{collector:4317 true true false map[]  false 0s false   []  http://collector:4317 false  }"},
		{"https default port", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector"}, Metrics,
			"{collector:4317 true false false map[]  false 0s false   []  https://collector false  }"},
		{"signal wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:2/v1/traces"}, Traces,
			"{b:2 true false false map[]  false 0s false   []  https://b:2/v1/traces true  }"},
		{"other signal ignored", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b:2"}, Metrics,
			"{a:1 true true false map[]  false 0s false   []  http://a:1 false  }"},
		{"insecure overrides scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://a:1", "OTEL_EXPORTER_OTLP_INSECURE": "TRUE"}, Traces,
			"{a:1 true true true map[]  false 0s false   []  https://a:1 false  }"},
		{"ipv6", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1]:4317"}, Traces,
			"{[::1]:4317 true true false map[]  false 0s false   []  http://[::1]:4317 false  }"},
		{"headers", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": " api-key = a%20b , X-Tenant=t1,", "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "m=1"}, Traces,
			"{ false false false map[api-key:a b x-tenant:t1]  false 0s false   []   false  }"},
		{"metrics headers", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "m=1"}, Metrics,
			"{ false false false map[m:1]  false 0s false   []   false  }"},
		{"compression timeout cert", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500",
			"OTEL_EXPORTER_OTLP_CERTIFICATE": "/ca.pem"}, Traces,
			"{ false false false map[] gzip true 1.5s true /ca.pem  []   false  }"},
		{"none", map[string]string{"OTEL_EXPORTER_OTLP_COMPRESSION": "none"}, Traces, "{ false false false map[]  true 0s false   []   false  }"},
		{"resource", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod%2Feu, team = core"}, Traces,
			"{ false false false map[]  false 0s false  from-attrs [[deployment.environment prod/eu] [team core]]   false  }"},
		{"service name wins", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=a", "OTEL_SERVICE_NAME": "b"}, Traces,
			"{ false false false map[]  false 0s false  b []   false  }"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Load(env(c.env), c.s)
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(got); s != c.want {
				t.Errorf("got  %s\nwant %s", s, c.want)
			}
		})
	}
}

// TestMalformed: every malformed value is an error that names its variable.
func TestMalformed(t *testing.T) {
	for name, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":         "localhost:4317",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  "ftp://a:1",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://:4317",
		"OTEL_EXPORTER_OTLP_INSECURE":         "yes please",
		"OTEL_EXPORTER_OTLP_HEADERS":          "novalue",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS":   "=v",
		"OTEL_EXPORTER_OTLP_COMPRESSION":      "lz4",
		"OTEL_EXPORTER_OTLP_TIMEOUT":          "10s",
		"OTEL_RESOURCE_ATTRIBUTES":            "a=%zz",
		"OTEL_EXPORTER_OTLP_PROTOCOL":         "http/json",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL":  "quic",
		"OTEL_EXPORTER_OTLP_CLIENT_KEY":       "/key.pem",
	} {
		s := Traces
		if strings.Contains(name, "METRICS") {
			s = Metrics
		}
		_, err := Load(env(map[string]string{name: v}), s)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: error %v does not name the variable", name, v, err)
		}
	}
	if _, err := Load(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:99999"}), Traces); err == nil {
		t.Error("port 99999 accepted")
	}
}

// TestHTTP: the protocol, the client certificate, and the OTLP/HTTP path
// rule: a signal's endpoint used as given, the generic one with the
// signal's path appended.
func TestHTTP(t *testing.T) {
	m := map[string]string{
		"OTEL_EXPORTER_OTLP_PROTOCOL":                  "http/protobuf",
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL":          "grpc",
		"OTEL_EXPORTER_OTLP_ENDPOINT":                  "http://collector:4318/base/",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT":          "https://m.example.com/custom",
		"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE": "/c.pem",
		"OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY":         "/k.pem",
	}
	tr, err := Load(env(m), Traces)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Protocol != HTTPProtobuf || HTTPURL(tr, Traces) != "http://collector:4318/base/v1/traces" || tr.ClientCertFile != "/c.pem" || tr.ClientKeyFile != "/k.pem" {
		t.Errorf("traces: %+v, URL %s", tr, HTTPURL(tr, Traces))
	}
	me, err := Load(env(m), Metrics)
	if err != nil {
		t.Fatal(err)
	}
	if me.Protocol != GRPC || HTTPURL(me, Metrics) != "https://m.example.com/custom" || me.ClientCertFile != "" {
		t.Errorf("metrics: %+v, URL %s", me, HTTPURL(me, Metrics))
	}
	if u := AppendPath("http://a:4318", Metrics); u != "http://a:4318/v1/metrics" {
		t.Errorf("AppendPath: %s", u)
	}
	_, err = Load(env(map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}), Traces)
	if err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Errorf("http/json: %v", err)
	}
}

func ExampleLoad() {
	getenv := env(map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4317",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com",
		"OTEL_EXPORTER_OTLP_HEADERS":         "api-key=secret",
		"OTEL_EXPORTER_OTLP_TIMEOUT":         "2000",
	})
	c, err := Load(getenv, Traces)
	fmt.Println(c.Endpoint, c.Insecure, c.Headers["api-key"], c.Timeout, err)
	// Output: traces.example.com:4317 false secret 2s <nil>
}
