package rabbitmq_test

import (
	"context"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/adapters/rabbitmq"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// open opens a transport and deletes the queues and exchanges it declared
// when the test ends, so test runs leave the broker as they found it.
func open(t *testing.T, url string, options map[string]string) (*testenv.Transport, error) {
	tr, err := testenv.Watermill(rabbitmq.Driver{}.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: url, Options: options}))
	if err != nil {
		return nil, err
	}
	var rt *rabbitmq.Transport
	if !tr.As(&rt) {
		t.Fatal("As(*rabbitmq.Transport) failed")
	}
	t.Cleanup(func() { deleteTopology(t, url, rt.DeclaredQueues()) })
	return tr, nil
}

func deleteTopology(t *testing.T, url string, queues []string) {
	if len(queues) == 0 {
		return
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer ch.Close()
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
		// A queue is <topic>.<group>; test groups have no dots, topics may
		// (<topic>.dlq).
		if i := strings.LastIndex(q, "."); i > 0 && strings.HasPrefix(q, "ct-") {
			_ = ch.ExchangeDelete(q[:i], false, false)
		}
		if strings.HasSuffix(q, ".dlq") {
			_ = ch.ExchangeDelete(strings.TrimSuffix(q, ".dlq")+".dlx", false, false)
		}
	}
}

func harness(url string, options map[string]string) conformance.Harness {
	return conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(t, url, options) },
	}
}

func TestConformanceClassicQueues(t *testing.T) {
	h := harness(testenv.RabbitMQ(t), nil)
	h.KilledConsumer = true // the broker requeues what a dead connection held, at once
	h.OpenConfig, h.Secret = rabbitmq.Driver{}.Open, hygieneSecret
	url := testenv.RabbitMQ(t)
	h.InjectRaw = injectAMQP(url, "") // a plain AMQP publish: no message-id, no headers
	// A structured-mode event, as the CloudEvents AMQP binding sends it.
	h.InjectEvent = injectAMQP(url, "application/cloudevents+json; charset=utf-8")
	h.ConfigAt = func(addr string) sdk.Config {
		return sdk.Config{Driver: "rabbitmq", URL: "amqp://guest:" + hygieneSecret + "@" + addr + "/"}
	}
	h.Proxied = func(proxy func(string) string) sdk.Config {
		return sdk.Config{Driver: "rabbitmq", URL: testenv.ProxiedURL(url, proxy)}
	}
	conformance.Run(t, h)
}

// hygieneSecret is the password of the configs the hygiene tests use.
const hygieneSecret = "s3cret-in-the-url"

func TestConformanceQuorumQueues(t *testing.T) {
	conformance.Run(t, harness(testenv.RabbitMQ(t), map[string]string{"queue_type": "quorum"}))
}

func TestConformanceSharedTopicExchange(t *testing.T) {
	conformance.Run(t, harness(testenv.RabbitMQ(t), map[string]string{"exchange": "ct-platform.events"}))
}

// injectAMQP publishes payload to a topic's exchange with no message-id and
// no headers, only the given content type, as a producer that is not
// msgkit would.
func injectAMQP(url, contentType string) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		conn, err := amqp.Dial(url)
		if err != nil {
			return err
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		return ch.PublishWithContext(ctx, topic, "", false, false, amqp.Publishing{Body: payload, ContentType: contentType})
	}
}
