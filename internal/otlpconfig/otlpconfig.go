// Package otlpconfig reads the OpenTelemetry exporter environment variables
// for the OTLP outputs (gRPC and HTTP), as the OpenTelemetry Go exporters
// (otlptracegrpc, otlpmetricgrpc, otlptracehttp, otlpmetrichttp) read them,
// with one difference: a malformed value is an error naming the variable,
// never a silent default.
//
// Per signal, a signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_X,
// OTEL_EXPORTER_OTLP_METRICS_X) wins over the generic one
// (OTEL_EXPORTER_OTLP_X). The exporter then applies its own options over
// what is read here: an explicit option wins over any variable.
package otlpconfig

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signal is traces or metrics.
type Signal int

// The signals.
const (
	Traces Signal = iota
	Metrics
)

func (s Signal) infix() string {
	if s == Metrics {
		return "METRICS_"
	}
	return "TRACES_"
}

// DefaultPort is OTLP/gRPC's port, used when an endpoint has none.
const DefaultPort = "4317"

// Config is what the environment says for one signal. The Set fields tell
// which values came from a variable.
type Config struct {
	Endpoint    string // host:port for grpc.NewClient
	EndpointSet bool
	// Insecure: from ..._INSECURE, or else from the endpoint's scheme (http:
	// plaintext, https: TLS).
	Insecure    bool
	InsecureSet bool
	Headers     map[string]string // nil when unset
	Compression string            // "gzip", "zstd", "snappy", or "" for none
	CompSet     bool
	Timeout     time.Duration
	TimeoutSet  bool
	// CertificateFile is a PEM file of the CA certificates to trust
	// (..._CERTIFICATE), or "".
	CertificateFile string
	// ServiceName is OTEL_SERVICE_NAME, or else the service.name of
	// OTEL_RESOURCE_ATTRIBUTES, or "".
	ServiceName string
	// ResourceAttributes are OTEL_RESOURCE_ATTRIBUTES in the order given,
	// without service.name.
	ResourceAttributes [][2]string

	// Protocol is ..._PROTOCOL: "grpc", "http/protobuf", or "" when unset.
	Protocol string
	// URL is the endpoint variable's value as given (OTLP/HTTP uses it
	// whole), and URLSignal whether it came from the signal's own variable
	// (used as given) rather than the generic one (which gets /v1/traces or
	// /v1/metrics appended).
	URL       string
	URLSignal bool
	// ClientCertFile and ClientKeyFile are the PEM files of the client's
	// certificate and key for mutual TLS (..._CLIENT_CERTIFICATE,
	// ..._CLIENT_KEY), or "".
	ClientCertFile, ClientKeyFile string
}

// Protocols.
const (
	GRPC         = "grpc"
	HTTPProtobuf = "http/protobuf"
)

// Load reads the variables of signal s through getenv (os.Getenv).
func Load(getenv func(string) string, s Signal) (Config, error) {
	var c Config
	get := func(name string) (value, from string) {
		if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + s.infix() + name)); v != "" {
			return v, "OTEL_EXPORTER_OTLP_" + s.infix() + name
		}
		return strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + name)), "OTEL_EXPORTER_OTLP_" + name
	}
	if v, name := get("ENDPOINT"); v != "" {
		ep, insecure, err := endpoint(v)
		if err != nil {
			return c, fmt.Errorf("%s=%q: %w", name, v, err)
		}
		c.Endpoint, c.EndpointSet, c.Insecure = ep, true, insecure
		c.URL, c.URLSignal = v, name == "OTEL_EXPORTER_OTLP_"+s.infix()+"ENDPOINT"
	}
	if v, name := get("PROTOCOL"); v != "" {
		switch v {
		case GRPC, HTTPProtobuf:
			c.Protocol = v
		case "http/json":
			return c, fmt.Errorf("%s=%q: OTLP/HTTP with JSON is not supported: use http/protobuf or grpc", name, v)
		default:
			return c, fmt.Errorf("%s=%q: want grpc or http/protobuf", name, v)
		}
	}
	if v, name := get("INSECURE"); v != "" {
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return c, fmt.Errorf("%s=%q: want true or false", name, v)
		}
		c.Insecure, c.InsecureSet = b, true
	}
	if v, name := get("HEADERS"); v != "" {
		h, err := pairs(v)
		if err != nil {
			return c, fmt.Errorf("%s: %w", name, err)
		}
		c.Headers = make(map[string]string, len(h))
		for _, kv := range h {
			c.Headers[strings.ToLower(kv[0])] = kv[1]
		}
	}
	if v, name := get("COMPRESSION"); v != "" {
		// The specification names gzip and none; zstd and snappy are
		// accepted as an extension (the Collector's gRPC receivers read
		// both).
		switch lv := strings.ToLower(v); lv {
		case "gzip", "zstd", "snappy":
			c.Compression = lv
		case "none":
		default:
			return c, fmt.Errorf("%s=%q: want gzip, zstd, snappy or none", name, v)
		}
		c.CompSet = true
	}
	if v, name := get("TIMEOUT"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			return c, fmt.Errorf("%s=%q: want a positive number of milliseconds", name, v)
		}
		c.Timeout, c.TimeoutSet = time.Duration(ms)*time.Millisecond, true
	}
	if v, _ := get("CERTIFICATE"); v != "" {
		c.CertificateFile = v
	}
	certVar, keyVar := "", ""
	if v, name := get("CLIENT_CERTIFICATE"); v != "" {
		c.ClientCertFile, certVar = v, name
	}
	if v, name := get("CLIENT_KEY"); v != "" {
		c.ClientKeyFile, keyVar = v, name
	}
	if (c.ClientCertFile == "") != (c.ClientKeyFile == "") {
		return c, fmt.Errorf("%s%s is set without its pair (a client certificate needs its key and a key its certificate)", certVar, keyVar)
	}
	if v := strings.TrimSpace(getenv("OTEL_RESOURCE_ATTRIBUTES")); v != "" {
		attrs, err := pairs(v)
		if err != nil {
			return c, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
		}
		for _, kv := range attrs {
			if kv[0] == "service.name" {
				c.ServiceName = kv[1]
				continue
			}
			c.ResourceAttributes = append(c.ResourceAttributes, kv)
		}
	}
	if v := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); v != "" {
		c.ServiceName = v
	}
	return c, nil
}

// endpoint parses an OTLP/gRPC endpoint URL: http (plaintext) or https
// (TLS), host and optional port (4317 by default); a path means nothing to
// gRPC and is ignored, as the OpenTelemetry Go exporters do.
func endpoint(v string) (hostport string, insecure bool, err error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", false, fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		insecure = true
	case "https":
	default:
		return "", false, fmt.Errorf("want an http:// or https:// URL, such as http://localhost:4317")
	}
	if u.Hostname() == "" {
		return "", false, fmt.Errorf("no host")
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", false, fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(u.Hostname(), port), insecure, nil
}

// pairs parses "k1=v1,k2=v2" with percent-encoded keys and values (the W3C
// baggage form the specification gives for headers and resource
// attributes); spaces around entries, keys and values are trimmed.
func pairs(v string) ([][2]string, error) {
	var out [][2]string
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, val, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("entry %q has no '='", entry)
		}
		k, err := url.PathUnescape(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("entry %q: bad key: %w", entry, err)
		}
		if k == "" {
			return nil, fmt.Errorf("entry %q has an empty key", entry)
		}
		val, err = url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("entry %q: bad value: %w", entry, err)
		}
		out = append(out, [2]string{k, val})
	}
	return out, nil
}

// HTTPURL is the OTLP/HTTP URL of signal s from an endpoint read by Load:
// a signal's own endpoint is used as given; the generic one is a base URL
// that gets /v1/traces or /v1/metrics appended to its path.
func HTTPURL(c Config, s Signal) string {
	if c.URLSignal {
		return c.URL
	}
	return AppendPath(c.URL, s)
}

// AppendPath appends the signal's path to base's path (a base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT).
func AppendPath(base string, s Signal) string {
	u, err := url.Parse(base)
	if err != nil {
		return base // Load has parsed it already
	}
	p := "/v1/traces"
	if s == Metrics {
		p = "/v1/metrics"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + p
	u.RawPath = ""
	return u.String()
}
