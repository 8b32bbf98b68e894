package testenv

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// TLSSuite describes a driver's TLS listener for RunTLSSuite: a server
// with Files' server certificate that requires a client certificate
// signed by Files.CA.
type TLSSuite struct {
	Driver string
	Files  TLSFiles
	Addr   string // host:port of the TLS listener, which errors must name
	// TLSURL and PlainURL reach Addr with and without TLS (the same URL for
	// a driver whose URL does not say, such as Kafka's).
	TLSURL, PlainURL string
	// TLSOptions are the options that turn TLS on beside the URL (Kafka's
	// tls: true); nil where the URL's scheme decides.
	TLSOptions map[string]string
	// PlainHint is what an error says to connect with TLS ("write
	// rediss://", "set tls: true").
	PlainHint string
	// Options are options every Open carries, with or without TLS (a
	// region and credentials).
	Options map[string]string
}

// RunTLSSuite checks a driver's TLS options against a live listener:
// mutual TLS with files and with PEM text carries a message; a wrong CA, a
// missing client certificate, one from another CA, a wrong server name and
// a plain connection to the TLS port each fail at Open naming the address
// and the setting that fixes it; skipping verification works and logs a
// warning; tls_* options on a connection without TLS are a ConfigError.
func RunTLSSuite(t *testing.T, s TLSSuite) {
	f := s.Files
	plain := func(o map[string]string) map[string]string {
		m := maps.Clone(s.Options)
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, o)
		return m
	}
	with := func(o map[string]string) map[string]string {
		m := plain(s.TLSOptions)
		maps.Copy(m, o)
		return m
	}
	mtls := map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey}
	open := func(t *testing.T, url string, options map[string]string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := sdk.Open(ctx, sdk.Config{Driver: s.Driver, URL: url, Options: options})
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
			ClientRoundTrip(t, c, "tls-"+strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()))
		}
		return err
	}
	t.Run("mutual TLS carries messages", func(t *testing.T) {
		if err := open(t, s.TLSURL, with(mtls)); err != nil {
			t.Fatalf("open with the CA and a client certificate: %v", err)
		}
	})
	t.Run("PEM text in place of files", func(t *testing.T) {
		if err := open(t, s.TLSURL, with(map[string]string{"tls_ca_pem": f.CAPEM, "tls_cert_pem": f.ClientCertPEM, "tls_key_pem": f.ClientKeyPEM})); err != nil {
			t.Fatalf("open with PEM options: %v", err)
		}
	})
	for _, c := range []struct {
		name, url string
		options   map[string]string
		want      string
	}{
		{"wrong CA", s.TLSURL, with(map[string]string{"tls_ca_file": f.OtherCA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey}), "not signed by a CA this client trusts: set tls_ca_file"},
		{"no client certificate", s.TLSURL, with(map[string]string{"tls_ca_file": f.CA}), "set tls_cert_file and tls_key_file"},
		{"client certificate from another CA", s.TLSURL, with(map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.OtherClientCert, "tls_key_file": f.OtherClientKey}), "(tls_cert_file or tls_cert_pem)"},
		{"server name", s.TLSURL, with(map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey, "tls_server_name": "broker.example"}), "tls_server_name"},
		{"plain connection to the TLS port", s.PlainURL, plain(nil), s.PlainHint},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := open(t, c.url, c.options)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), s.Addr) {
				t.Fatalf("want an error at Open naming %s and saying %q, got %v", s.Addr, c.want, err)
			}
		})
	}
	t.Run("skipping verification works and warns", func(t *testing.T) {
		var logged bytes.Buffer
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
		defer slog.SetDefault(prev)
		if err := open(t, s.TLSURL, with(map[string]string{"tls_insecure_skip_verify": "true", "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey})); err != nil {
			t.Fatalf("open without verification: %v", err)
		}
		if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "verification is off") {
			t.Fatalf("want a warning at Open that verification is off, logged:\n%s", logged.String())
		}
	})
	t.Run("tls options without TLS", func(t *testing.T) {
		_, err := sdk.Open(context.Background(), sdk.Config{Driver: s.Driver, URL: s.PlainURL, Options: plain(mtls)})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != "options.tls_ca_file" || !strings.Contains(err.Error(), s.PlainHint) {
			t.Fatalf("want a ConfigError for options.tls_ca_file saying %q, got %v", s.PlainHint, err)
		}
	})
}
