package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// TestTLS runs a private redis-server that listens only with TLS and
// requires a client certificate, with a CA made for the test.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	addr := testenv.StartRedisTLS(t, f)
	mtls := map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey}
	open := func(t *testing.T, url string, options map[string]string) (context.CancelFunc, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tr, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: url, Options: options})
		if err == nil {
			t.Cleanup(func() { tr.Close(context.Background()) })
			testenv.ClientRoundTrip(t, tr, "tls-"+strings.ReplaceAll(t.Name(), "/", "-"))
		}
		return cancel, err
	}
	t.Run("mutual TLS carries messages", func(t *testing.T) {
		cancel, err := open(t, "rediss://"+addr+"/0", mtls)
		defer cancel()
		if err != nil {
			t.Fatalf("open with the CA and a client certificate: %v", err)
		}
	})
	t.Run("PEM text in place of files", func(t *testing.T) {
		cancel, err := open(t, "rediss://"+addr+"/0", map[string]string{"tls_ca_pem": f.CAPEM, "tls_cert_pem": f.ClientCertPEM, "tls_key_pem": f.ClientKeyPEM})
		defer cancel()
		if err != nil {
			t.Fatalf("open with PEM options: %v", err)
		}
	})
	for _, c := range []struct {
		name, url string
		options   map[string]string
		want      string
	}{
		{"wrong CA", "rediss://" + addr + "/0", map[string]string{"tls_ca_file": f.OtherCA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey}, "not signed by a CA this client trusts: set tls_ca_file"},
		{"no client certificate", "rediss://" + addr + "/0", map[string]string{"tls_ca_file": f.CA}, "requires a client certificate: set tls_cert_file and tls_key_file"},
		{"client certificate from another CA", "rediss://" + addr + "/0", map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.OtherClientCert, "tls_key_file": f.OtherClientKey}, "client certificate (tls_cert_file or tls_cert_pem)"},
		{"server name", "rediss://" + addr + "/0", map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey, "tls_server_name": "redis.example"}, "tls_server_name"},
		{"plain URL on a TLS port", "redis://" + addr + "/0", nil, "write rediss://"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cancel, err := open(t, c.url, c.options)
			defer cancel()
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), addr) {
				t.Fatalf("want an error at Open naming %s and saying %q, got %v", addr, c.want, err)
			}
		})
	}
	t.Run("skipping verification works and warns", func(t *testing.T) {
		var logged bytes.Buffer
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
		defer slog.SetDefault(prev)
		cancel, err := open(t, "rediss://"+addr+"/0", map[string]string{"tls_insecure_skip_verify": "true", "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey})
		defer cancel()
		if err != nil {
			t.Fatalf("open without verification: %v", err)
		}
		if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "verification is off") {
			t.Fatalf("want a warning at Open that verification is off, logged:\n%s", logged.String())
		}
	})
	t.Run("tls options with a plain URL", func(t *testing.T) {
		_, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: "redis://" + addr + "/0", Options: mtls})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != "options.tls_ca_file" || !strings.Contains(err.Error(), "write rediss:// in url") {
			t.Fatalf("want a ConfigError for options.tls_ca_file saying to write rediss://, got %v", err)
		}
	})
}
