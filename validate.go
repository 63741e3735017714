package ocagent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/resolver"

	"github.com/zerocensus/ocagent/stream/compress"
)

// validateEndpoints rejects, at NewExporter, what can never work on any
// connection attempt, so that it is not found out span by span (each one
// dropped at stop, the reason only in LastError):
//
//   - a compressor that is neither one of the exporter's own (gzip, zstd,
//     snappy: see compressorFor) nor registered (grpc refuses every call with
//     "Compressor is not installed for requested grpc-encoding"), whether
//     from UseCompressor or OTEL_EXPORTER_OTLP_COMPRESSION;
//   - an address that gRPC's DNS resolver can never parse ("invalid target
//     address"), such as "::::", "host:" or "".
//
// Whatever needs the network is left to the connection attempts: a name that
// does not resolve (yet), a refused connection, a TLS handshake that fails.
func validateEndpoints(eps [2]*endpoint, cfg config) error {
	var errs []error
	for i, ep := range eps {
		if i == 1 && ep.same(eps[0]) {
			break
		}
		if ep.url != "" {
			errs = append(errs, validateHTTP(ep)...)
			continue
		}
		if c := ep.compressor; c != "" && c != encoding.Identity && !compress.Known(c) && encoding.GetCompressor(c) == nil {
			errs = append(errs, fmt.Errorf("ocagent: compressor %q is neither gzip, zstd nor snappy, nor registered with gRPC (encoding.RegisterCompressor)", c))
		}
		if err := dialableTarget(ep.address, cfg); err != nil {
			errs = append(errs, fmt.Errorf("ocagent: address %q can never be dialled: %w", ep.address, err))
		}
	}
	return errors.Join(errs...)
}

// dialableTarget reports an address that gRPC's target parsing can never
// dial. gRPC itself decides which resolver a target goes to (a scheme it
// knows, one registered by a dial option, else DNS); only a DNS target is
// checked here, the way gRPC's DNS resolver parses it (its parseTarget, with
// its default port 443), without resolving anything. Other schemes are left
// to their resolvers.
func dialableTarget(target string, cfg config) error {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, cfg.dialOptions...)
	cc, err := grpc.NewClient(target, opts...) // dials nothing
	if err != nil {
		return nil // an option's own error: Start reports it
	}
	canonical := cc.CanonicalTarget()
	_ = cc.Close()
	u, err := url.Parse(canonical)
	if err != nil || u.Scheme != "dns" {
		return nil
	}
	host := resolver.Target{URL: *u}.Endpoint()
	switch {
	case host == "":
		return errors.New("missing address")
	case validIP(host):
		return nil
	}
	if _, port, err := net.SplitHostPort(host); err == nil {
		if port == "" {
			return errors.New("missing port after port-separator colon")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(host + ":443"); err != nil {
		return fmt.Errorf("invalid target address %v, error info: %v", host, err)
	}
	return nil
}

// validateHTTP checks an OTLP/HTTP endpoint: a URL net/http can send to,
// and a compression it speaks (gzip or none).
func validateHTTP(ep *endpoint) []error {
	var errs []error
	switch ep.compressor {
	case "", "gzip", encoding.Identity, "none":
	default:
		errs = append(errs, fmt.Errorf("ocagent: compressor %q: OTLP/HTTP sends gzip or nothing", ep.compressor))
	}
	u, err := url.Parse(ep.url)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("ocagent: OTLP/HTTP URL %q: %w", ep.url, err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("ocagent: OTLP/HTTP URL %q: want http or https", ep.url))
	case u.Hostname() == "":
		errs = append(errs, fmt.Errorf("ocagent: OTLP/HTTP URL %q: no host", ep.url))
	}
	return errs
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
