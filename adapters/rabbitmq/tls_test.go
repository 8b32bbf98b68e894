package rabbitmq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// TestTLS runs a private RabbitMQ node whose only listener is TLS and
// requires a client certificate, with a CA made for the test; the shared
// node is not touched.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	node := testenv.StartRabbitMQ(t, testenv.RabbitMQSpec{TLS: &f, RequireClientCert: true, NoPlainListener: true})
	addr := node.TLSAddr
	testenv.RunTLSSuite(t, testenv.TLSSuite{Driver: "rabbitmq", Files: f, Addr: addr,
		TLSURL: "amqps://guest:guest@" + addr + "/", PlainURL: "amqp://guest:guest@" + addr + "/", PlainHint: "write amqps://"})
	t.Run("TLS settings in the URL's query", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		url := "amqps://guest:guest@" + addr + "/?cacertfile=" + f.CA + "&certfile=" + f.ClientCert + "&keyfile=" + f.ClientKey
		c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url})
		if err != nil {
			t.Fatalf("open with cacertfile, certfile and keyfile in the URL: %v", err)
		}
		defer c.Close(context.Background())
		testenv.ClientRoundTrip(t, c, "tls-query")
		_, err = sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"tls_ca_file": f.CA}})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != "options.tls_ca_file" || !strings.Contains(err.Error(), "cacertfile") {
			t.Fatalf("want a ConfigError saying tls_ca_file and the URL's cacertfile both set it, got %v", err)
		}
	})
}
