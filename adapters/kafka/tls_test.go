package kafka_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/msgkit/adapters/kafka"
	"github.com/msgkit/msgkit/internal/testenv"
)

// TestTLS runs the shared TLS suite against a kfake listener that speaks
// only TLS and requires a client certificate, with a CA made for the test.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	c := startCluster(t, kfake.TLS(f.ServerConfig(t, true)))
	addr := c.ListenAddrs()[0]
	testenv.RunTLSSuite(t, testenv.TLSSuite{Driver: kafka.DriverName, Files: f, Addr: addr,
		TLSURL: "kafka://" + addr, PlainURL: "kafka://" + addr,
		TLSOptions: map[string]string{"tls": "true"}, PlainHint: "set tls: true"})
}

// A client and a listener that disagree about SASL fail at Open saying so,
// not that the cluster ran out of brokers.
func TestSASLListenerMismatch(t *testing.T) {
	plain := startCluster(t)
	sasl := startCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "u", "p"))
	_, err := open(context.Background(), "kafka://"+plain.ListenAddrs()[0], map[string]string{"sasl_mechanism": "SCRAM-SHA-256", "sasl_user": "u", "sasl_password": "p"})
	if err == nil || !strings.Contains(err.Error(), "the listener does not use SASL") || !strings.Contains(err.Error(), plain.ListenAddrs()[0]) {
		t.Fatalf("a SASL client on a listener without SASL: want an error naming the address and saying the listener does not use SASL, got %v", err)
	}
	_, err = open(context.Background(), "kafka://"+sasl.ListenAddrs()[0], nil)
	if err == nil || !strings.Contains(err.Error(), "requires a login (set sasl_mechanism") {
		t.Fatalf("a client without SASL on a SASL listener: want an error saying the listener requires a login, got %v", err)
	}
}
