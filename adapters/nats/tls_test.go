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

// A server list whose later servers leave out the scheme (as an AMQP node
// list may) is refused saying to write each in full: nats.go would connect
// to them without the first one's credentials. The token stays out of it.
func TestServerWithoutSchemeIsAConfigError(t *testing.T) {
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "nats", URL: "nats://s3cr3ttoken@127.0.0.1:4222,127.0.0.1:4223"})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || ce.Key != "url" || !strings.Contains(err.Error(), "server 2 of the list has no scheme") ||
		strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("want a ConfigError for url naming server 2, without the token, got %v", err)
	}
}
