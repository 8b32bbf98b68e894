package sdk_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// tlsServer accepts connections on loopback, completes the handshake (or,
// with cfg nil, speaks plain text) and writes "ok\n".
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if cfg == nil {
					_, _ = c.Write([]byte("-ERR plain text here\r\n"))
					return
				}
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				_, _ = tc.Write([]byte("ok\n"))
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects with the options as a driver would at Open, and reads the
// server's first line, where a TLS 1.3 server's refusal of the client
// certificate arrives.
func dial(t *testing.T, addr string, options map[string]string) error {
	t.Helper()
	cfg := sdk.Config{Driver: "test", Options: options}
	var o sdk.TLSOptions
	if err := cfg.OptionsSection().Decode(&o); err != nil {
		t.Fatal(err)
	}
	on := true
	tc, err := o.ClientConfig(cfg, &on, "tests://")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{Config: tc}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return sdk.ExplainTLS(err, tc)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return sdk.ExplainTLS(err, tc)
	}
	if line != "ok\n" {
		t.Fatalf("read %q", line)
	}
	return nil
}

func TestExplainTLSSaysWhichSettingToFix(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	mtls := tlsServer(t, f.ServerConfig(t, true))
	plainTLS := tlsServer(t, f.ServerConfig(t, false))
	tls12 := f.ServerConfig(t, true)
	tls12.MaxVersion = tls.VersionTLS12
	mtls12 := tlsServer(t, tls12)
	client := map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.ClientCert, "tls_key_file": f.ClientKey}
	if err := dial(t, mtls, client); err != nil {
		t.Fatalf("with the right CA and a client certificate: %v", err)
	}
	if err := dial(t, mtls, map[string]string{"tls_ca_pem": f.CAPEM, "tls_cert_pem": f.ClientCertPEM, "tls_key_pem": f.ClientKeyPEM}); err != nil {
		t.Fatalf("with the CA and client certificate as PEM text: %v", err)
	}
	for _, c := range []struct {
		name    string
		addr    string
		options map[string]string
		want    string
	}{
		{"wrong CA", plainTLS, map[string]string{"tls_ca_file": f.OtherCA}, "not signed by a CA this client trusts: set tls_ca_file"},
		{"system roots", plainTLS, nil, "not signed by a CA this client trusts"},
		{"no client certificate", mtls, map[string]string{"tls_ca_file": f.CA}, "requires a client certificate: set tls_cert_file and tls_key_file"},
		{"no client certificate, TLS 1.2", mtls12, map[string]string{"tls_ca_file": f.CA}, "requires a client certificate"},
		{"client certificate from another CA", mtls, map[string]string{"tls_ca_file": f.CA, "tls_cert_file": f.OtherClientCert, "tls_key_file": f.OtherClientKey}, "(tls_cert_file or tls_cert_pem)"},
		{"server name", plainTLS, map[string]string{"tls_ca_file": f.CA, "tls_server_name": "broker.example"}, `not for "broker.example": connect by a name it holds, or set tls_server_name`},
		{"not TLS", tlsServer(t, nil), map[string]string{"tls_ca_file": f.CA}, "did not answer in TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := dial(t, c.addr, c.options)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an error saying %q, got %v", c.want, err)
			}
		})
	}
}

func TestTLSOptionsErrorsNameTheKey(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	plain, secure := false, true
	for _, c := range []struct {
		options   map[string]string
		schemeTLS *bool
		key, want string
	}{
		{map[string]string{"tls_ca_file": f.CA}, &plain, "options.tls_ca_file", "write tests:// in url"},
		{map[string]string{"tls_ca_file": f.CA}, nil, "options.tls_ca_file", "set tls: true"},
		{map[string]string{"tls": "true"}, &plain, "options.tls", "write tests:// in url instead of tls: true"},
		{map[string]string{"tls_ca_file": "/nonexistent/ca.pem"}, &secure, "options.tls_ca_file", "cannot read the CA bundle"},
		{map[string]string{"tls_ca_pem": "not a certificate"}, &secure, "options.tls_ca_pem", "holds no PEM certificate"},
		{map[string]string{"tls_ca_pem": f.CAPEM, "tls_ca_file": f.CA}, &secure, "options.tls_ca_pem", "keep one"},
		{map[string]string{"tls_cert_file": f.ClientCert}, &secure, "options.tls_cert_file", "needs both tls_cert_file and tls_key_file"},
		{map[string]string{"tls_cert_pem": f.ClientCertPEM, "tls_key_pem": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n"}, &secure, "options.tls_cert_pem", "do not parse"},
		{map[string]string{"tls_cert_pem": f.ClientCertPEM, "tls_key_file": f.ClientKey}, &secure, "options.tls_cert_pem", "keep one pair"},
		{map[string]string{"tls_min_version": "1.1"}, &secure, "options.tls_min_version", "want 1.2 or 1.3"},
	} {
		cfg := sdk.Config{Driver: "test", Options: c.options}
		var o sdk.TLSOptions
		err := cfg.OptionsSection().Decode(&o)
		if err == nil {
			_, err = o.ClientConfig(cfg, c.schemeTLS, "tests://")
		}
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want a ConfigError for %s saying %q, got %v", c.options, c.key, c.want, err)
			continue
		}
		if strings.Contains(err.Error(), "c2VjcmV0") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%v: the error shows PEM text: %v", c.options, err)
		}
	}
}

func TestTLSOptionsNestInDriverOptions(t *testing.T) {
	type options struct {
		Prefetch int `option:"prefetch" default:"10"`
		TLS      sdk.TLSOptions
	}
	var o options
	cfg := sdk.Config{Driver: "test", Options: map[string]string{"tls_server_name": "broker.example"}}
	if err := cfg.OptionsSection().Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o.TLS.ServerName != "broker.example" || o.TLS.MinVersion != "1.2" || o.Prefetch != 10 {
		t.Fatalf("decoded %+v", o)
	}
	err := sdk.FillOptions("test", &options{TLS: sdk.TLSOptions{MinVersion: "1.0"}})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "options.tls_min_version" || !strings.Contains(ce.Source, "options.TLS.MinVersion") {
		t.Fatalf("want a ConfigError naming options.tls_min_version and the field options.TLS.MinVersion, got %v (%+v)", err, ce)
	}
}
