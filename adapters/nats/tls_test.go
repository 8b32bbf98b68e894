package nats_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// TestTLS runs the shared TLS suite against a private nats-server with
// JetStream that requires TLS and a client certificate, with a CA made for
// the test.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	addr := testenv.StartNATSTLS(t, f)
	testenv.RunTLSSuite(t, testenv.TLSSuite{Driver: "nats", Files: f, Addr: addr,
		TLSURL: "tls://" + addr, PlainURL: "nats://" + addr, PlainHint: "write tls://"})
}

func TestMixedSchemesAreAConfigError(t *testing.T) {
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "nats", URL: "tls://127.0.0.1:4222,nats://127.0.0.1:4223"})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "url" || !strings.Contains(err.Error(), "mixes tls:// and nats://") {
		t.Fatalf("want a ConfigError for url saying it mixes schemes, got %v", err)
	}
}
