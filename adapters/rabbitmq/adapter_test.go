package rabbitmq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/adapters/rabbitmq"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// TestMain lets the test binary double as the consumer process that the
// crash test kills with SIGKILL while it holds an unacked message.
func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(context.Context) (driver.Transport, error) {
		return open(&testing.T{}, testenv.Getenv("MSGKIT_TEST_RABBITMQ_URL", testenv.DefaultRabbitMQURL), nil)
	})
	testenv.RunDyingConsumer(func(url string) (driver.Transport, error) { return open(&testing.T{}, url, nil) })
	os.Exit(m.Run())
}

func names(prefix string) (topic, group string) {
	id := uuid.NewString()[:8]
	return "ct-" + prefix + "-" + id, "g-" + id
}

func TestConsumerKilledBeforeAckIsRedeliveredToAnotherConsumer(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("crash")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Declare the group first so the message has a queue to land in.
	sub, _ := tr.Subscriber(group)
	if _, err := sub.Subscribe(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()

	dying := testenv.StartDyingConsumer(t, url, topic, group)
	sent := message.NewMessage(uuid.NewString(), []byte("work"))
	if err := tr.Publisher().Publish(topic, sent); err != nil {
		t.Fatal(err)
	}
	if held := dying.Killed(); held != sent.UUID {
		t.Fatalf("the killed consumer should have held %s, held %s", sent.UUID, held)
	}

	other, _ := tr.Subscriber(group)
	ch, err := other.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got := testenv.AwaitMessage(t, ch, "the killed consumer's message to be redelivered to another consumer")
	if got.UUID != sent.UUID {
		t.Fatalf("got %s, want the killed consumer's %s", got.UUID, sent.UUID)
	}
	got.Ack()
}

// restartBroker restarts RabbitMQ's application (connections drop, durable
// queues and persistent messages are recovered from disk). Set
// MSGKIT_TEST_RABBITMQ_RESTART to another command for a remote broker.
func restartBroker(t *testing.T) {
	t.Helper()
	script := testenv.Getenv("MSGKIT_TEST_RABBITMQ_RESTART", "rabbitmqctl stop_app && rabbitmqctl start_app")
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("restarting RabbitMQ with %q failed: %v\n%s", script, err, out)
	}
}

func TestBrokerRestartMidStreamLosesNothing(t *testing.T) {
	url := testenv.RabbitMQ(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil && os.Getenv("MSGKIT_TEST_RABBITMQ_RESTART") == "" {
		if testenv.InCI() {
			t.Fatal("CI=true: rabbitmqctl is needed to restart the broker (or set MSGKIT_TEST_RABBITMQ_RESTART)")
		}
		t.Skip("rabbitmqctl not found; set MSGKIT_TEST_RABBITMQ_RESTART to restart the broker")
	}
	topic, group := names("restart")
	tr, err := open(t, url, map[string]string{"publish_timeout": "60s"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	client := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))

	testenv.RestartMidStream(t, client, topic, group, 60*time.Second, func() []string {
		restartBroker(t)
		return nil
	})
	if err := client.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestWrongCredentialsNameHostAndCauseButNotPassword(t *testing.T) {
	testenv.RabbitMQ(t)
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: "amqp://guest:NotThePassw0rd@127.0.0.1:5672/"})
	if err == nil {
		t.Fatal("open with a wrong password succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"127.0.0.1:5672", `user "guest"`, "refused", "check the credentials"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error should contain %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "NotThePassw0rd") {
		t.Fatalf("the password leaked into the error: %s", msg)
	}
}

func TestUnreachableBrokerNamesHost(t *testing.T) {
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: "amqp://guest:S3cret@127.0.0.1:1/"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "is RabbitMQ running") {
		t.Fatalf("want an error naming the host and the likely cause, got %v", err)
	}
	if strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("the password leaked: %v", err)
	}
}

func TestBadConfigIsReportedBeforeConnecting(t *testing.T) {
	cases := []struct {
		url     string
		options map[string]string
		want    string
	}{
		{"", nil, `key "url": the rabbitmq driver needs the broker's URL`},
		{"http://host/", nil, "want amqp://user:password@host:port[,host:port...]/vhost"},
		{"amqp://h/", map[string]string{"queue_type": "stream"}, "want classic or quorum"},
		{"amqp://h/", map[string]string{"delivery_limit": "3"}, "needs queue_type: quorum"},
		{"amqp://h/", map[string]string{"prefetch": "0"}, `key "options.prefetch": must be at least 1`},
		{"amqp://h/", map[string]string{"prefech": "10"}, `has no option "prefech"`},
		{"amqp://h/", map[string]string{"publish_timeout": "10"}, "want a duration"},
	}
	for _, c := range cases {
		_, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: c.url, Options: c.options})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("url=%q options=%v: want a *ConfigError containing %q, got %v", c.url, c.options, c.want, err)
		}
	}
}

func rawChannel(t *testing.T, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestStandardAttributesAreNativePropertiesForOtherClients(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("props")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(tr)
	defer client.Close(context.Background())
	sub, _ := tr.Subscriber(group)
	if _, err := sub.Subscribe(context.Background(), topic); err != nil { // declares the queue
		t.Fatal(err)
	}
	_ = sub.Close()
	sent := &sdk.Message{ID: uuid.NewString(), Payload: []byte(`{}`), EventType: "order.created", Source: "orders",
		ContentType: "application/json", CorrelationID: "c-1", Time: time.Unix(1700000000, 0), Metadata: map[string]string{"tenant": "acme"}}
	if err := client.Publish(context.Background(), topic, sent); err != nil {
		t.Fatal(err)
	}
	ch := rawChannel(t, url)
	var d amqp.Delivery
	testenv.Eventually(t, 10*time.Second, "the message in the queue", func() bool {
		var ok bool
		d, ok, err = ch.Get(topic+"."+group, true)
		return err == nil && ok
	})
	if d.MessageId != sent.ID || d.Type != "order.created" || d.AppId != "orders" || d.ContentType != "application/json" ||
		d.CorrelationId != "c-1" || !d.Timestamp.Equal(sent.Time) || d.DeliveryMode != amqp.Persistent {
		t.Fatalf("native properties not set: %+v", d)
	}
	if d.Headers["tenant"] != "acme" || d.Headers[sdk.KeyEventType] != "order.created" {
		t.Fatalf("headers missing: %v", d.Headers)
	}
}

func TestMessagesFromOtherClientsAreRead(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("foreign")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sub, _ := tr.Subscriber(group)
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ch := rawChannel(t, url)
	err = ch.Publish(topic, "", false, false, amqp.Publishing{
		MessageId: "foreign-1", Type: "invoice.paid", ContentType: "text/plain", CorrelationId: "c-9",
		Headers: amqp.Table{"count": int32(3), "x-death": []any{amqp.Table{"queue": "q", "count": int64(1)}}, "raw": []byte("bytes")},
		Body:    []byte("hello"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.AwaitMessage(t, msgs, "a message published by a plain AMQP client")
	m.Ack()
	got := sdk.FromWatermill(m)
	if got.ID != "foreign-1" || got.EventType != "invoice.paid" || got.ContentType != "text/plain" || got.CorrelationID != "c-9" {
		t.Fatalf("native properties not lifted into attributes: %+v", got)
	}
	if got.Metadata["count"] != "3" || got.Metadata["raw"] != "bytes" || !strings.Contains(got.Metadata["x-death"], `"queue":"q"`) {
		t.Fatalf("non-string headers should arrive as text: %v", got.Metadata)
	}
}

func TestQuorumDeliveryLimitDeadLetters(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("dlq")
	tr, err := open(t, url, map[string]string{"queue_type": "quorum", "dead_letter": "true", "delivery_limit": "2"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sub, _ := tr.Subscriber(group)
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := rawChannel(t, url).Consume(topic+"."+group+".dlq", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := message.NewMessage(uuid.NewString(), []byte("poison"))
	if err := tr.Publisher().Publish(topic, sent); err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	for {
		select {
		case m := <-msgs:
			deliveries++
			m.Nack()
			continue
		case d := <-dead:
			if d.MessageId != sent.UUID {
				t.Fatalf("dead-lettered %q, want %q", d.MessageId, sent.UUID)
			}
			if deliveries != 3 {
				t.Fatalf("dead-lettered after %d deliveries, want 3 (1 + delivery_limit 2)", deliveries)
			}
			return
		case <-time.After(20 * time.Second):
			t.Fatalf("message not dead-lettered after %d deliveries", deliveries)
		}
	}
}

func TestDeletedQueueIsDeclaredAgain(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("redeclare")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sub, _ := tr.Subscriber(group)
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawChannel(t, url).QueueDelete(topic+"."+group, false, false, false); err != nil {
		t.Fatal(err)
	}
	// Messages published before the consumer re-declares its queue have
	// nowhere to go; keep publishing until one arrives.
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case m := <-msgs:
			m.Ack()
			return
		case <-tick.C:
			if err := tr.Publisher().Publish(topic, message.NewMessage(uuid.NewString(), []byte("ping"))); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("the consumer did not re-declare its deleted queue and resume within 20s")
		}
	}
}

func TestRefusedCredentialsErrorKeepsItsCause(t *testing.T) {
	testenv.RabbitMQ(t)
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: "amqp://guest:wrong@127.0.0.1:5672/"})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		t.Fatalf("the AMQP error should be reachable with errors.As (code 403), got %T: %v", err, err)
	}
}

// A server that accepts the connection and never answers: Open returns by
// its context's deadline and says what it waited for.
func TestOpenReturnsByItsDeadlineWhenTheBrokerNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = rabbitmq.Driver{}.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: "amqp://guest:guest@" + l.Addr().String() + "/"})
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("Open took %v with a 500ms context", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("Open against a silent server must fail saying it got no handshake, got %v", err)
	}
}

// New runs on the caller's connection, reaches it through As, leaves it
// open on Close, and names a bad option by its key and field.
func TestNewOnTheCallersConnection(t *testing.T) {
	url := testenv.RabbitMQ(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = rabbitmq.New(conn, rabbitmq.Options{Prefetch: -1})
	if !isConfigError(err, "options.prefetch") || !strings.Contains(err.Error(), "rabbitmq.Options.Prefetch") {
		t.Fatalf("a bad option must be a ConfigError naming its key and field, got %v", err)
	}
	if _, err := rabbitmq.New(conn, rabbitmq.Options{DeliveryLimit: 3}); !isConfigError(err, "options.delivery_limit") {
		t.Fatalf("delivery_limit on classic queues must be refused, got %v", err)
	}
	tr, err := rabbitmq.New(conn, rabbitmq.Options{Prefetch: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopology(t, url, tr.DeclaredQueues()) })
	var got *amqp.Connection
	if !tr.As(&got) || got != conn {
		t.Fatal("As must reach the connection New was given")
	}
	topic, _ := names("new")
	testenv.RoundTrip(t, tr, topic)
	if conn.IsClosed() {
		t.Fatal("closing the transport must leave the caller's connection open")
	}
}

func isConfigError(err error, key string) bool {
	var ce *sdk.ConfigError
	return errors.As(err, &ce) && ce.Key == key
}

// A message from a plain AMQP client with no message-id gets an id derived
// from its content, the same on its redelivery, and different for a
// message that differs.
func TestMessageWithoutIDGetsOneStableAcrossRedeliveries(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("noid")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sub, _ := tr.Subscriber(group)
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ch := rawChannel(t, url)
	for _, body := range []string{"one", "two"} {
		if err := ch.Publish(topic, "", false, false, amqp.Publishing{Body: []byte(body), Headers: amqp.Table{"tenant": "acme"}}); err != nil {
			t.Fatal(err)
		}
	}
	first := testenv.AwaitMessage(t, msgs, "the first message without an id")
	first.Nack()
	var again, other *message.Message
	for again == nil || other == nil {
		m := testenv.AwaitMessage(t, msgs, "the redelivery and the second message")
		m.Ack()
		if string(m.Payload) == string(first.Payload) {
			again = m
		} else {
			other = m
		}
	}
	if first.UUID == "" || !strings.HasPrefix(first.UUID, "sha256:") || again.UUID != first.UUID {
		t.Fatalf("a message without an id must get one that stays the same on redelivery: %q then %q", first.UUID, again.UUID)
	}
	if other.UUID == first.UUID {
		t.Fatalf("messages with different bodies got the same id %q", other.UUID)
	}
}

// Headers too big for one AMQP frame are refused before sending, with the
// declared limit through the client and by the publisher itself for many
// small entries; the connection carries on, and concurrent publishes of
// other messages do not fail. Attribute values too long for an AMQP
// property (255 bytes) travel in their headers.
func TestOversizedHeadersAreRefusedAndTheConnectionCarriesOn(t *testing.T) {
	url := testenv.RabbitMQ(t)
	topic, group := names("bigheaders")
	tr, err := rabbitmq.Driver{}.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.NewClient(tr)
	defer c.Close(context.Background())
	got := make(chan *sdk.Message, 100)
	if _, err := c.Subscribe(context.Background(), topic, group, func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	big := &sdk.Message{Payload: []byte("x"), Metadata: map[string]string{"trace": strings.Repeat("v", 140<<10)}}
	if err := c.Publish(context.Background(), topic, big); !errors.Is(err, sdk.ErrMetadataTooLarge) {
		t.Fatalf("a 140 KB header: want ErrMetadataTooLarge, got %v", err)
	}
	many := &sdk.Message{Payload: []byte("x"), Metadata: map[string]string{}}
	for i := 0; i < 15000; i++ { // 4-5 bytes each as the client counts, about 12 on the wire
		many.Metadata[strconv.Itoa(i)] = ""
	}
	if err := c.Publish(context.Background(), topic, many); !errors.Is(err, sdk.ErrMetadataTooLarge) || !strings.Contains(err.Error(), "AMQP frame") {
		t.Fatalf("15,000 small headers: want ErrMetadataTooLarge naming the frame, got %v", err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Publish(context.Background(), topic, &sdk.Message{Payload: []byte("ok"), CorrelationID: strings.Repeat("c", 300)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a publish next to the refused ones failed: %v", err)
		}
	}
	for i := 0; i < 20; i++ {
		m := testenv.Await(t, got, "the messages published after the refused ones")
		if len(m.CorrelationID) != 300 {
			t.Fatalf("a 300-byte correlation id should arrive whole (in its header), got %d bytes", len(m.CorrelationID))
		}
	}
}

// A topic whose names AMQP cannot carry (over 255 bytes, not UTF-8) or
// RabbitMQ would change (control characters), and a metadata key longer
// than a header name may be, are refused at once, by subscribe and by
// publish, and the refusal takes neither connection down: the other
// subscriptions go on undisturbed.
func TestNamesAMQPCannotCarryAreRefusedWithoutDroppingTheConnection(t *testing.T) {
	url := testenv.RabbitMQ(t)
	var logs testenv.LockedBuffer
	defaultLogger := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(defaultLogger)
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var conn *amqp.Connection
	if !tr.As(&conn) {
		t.Fatal("As(*amqp.Connection) failed")
	}
	client := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	topic, group := names("beside-long")
	got := make(chan string, 4)
	sub, err := client.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())

	for _, c := range []struct{ topic, says string }{
		{topic + "-" + strings.Repeat("x", 256), "at most 255"},
		{topic + "-\xff", "not UTF-8"},
		{topic + "-\n", "control character"},
	} {
		if _, err := client.Subscribe(ctx, c.topic, group, func(context.Context, *sdk.Message) error { return nil }); !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), c.says) {
			t.Fatalf("subscribe to %q: want a refusal saying %q, got %v", c.topic, c.says, err)
		}
		start := time.Now()
		if err := client.Publish(ctx, c.topic, sdk.NewMessage([]byte("refused"))); !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), c.says) {
			t.Fatalf("publish to %q: want a refusal saying %q, got %v", c.topic, c.says, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("the refusal took %v: it was retried", took)
		}
	}
	longKey := &sdk.Message{Payload: []byte("long key"), Metadata: map[string]string{strings.Repeat("k", 256): "v"}}
	if err := client.Publish(ctx, topic, longKey); !errors.Is(err, sdk.ErrMetadataTooLarge) || !strings.Contains(err.Error(), "at most 255") {
		t.Fatalf("publish with a 256-byte metadata key: want sdk.ErrMetadataTooLarge naming AMQP's 255 bytes, got %v", err)
	}

	if err := client.Publish(ctx, topic, sdk.NewMessage([]byte("after"))); err != nil {
		t.Fatal(err)
	}
	if p := testenv.Await(t, got, "the message on the subscription beside the refused topic"); p != "after" {
		t.Fatalf("got %q", p)
	}
	if conn.IsClosed() {
		t.Fatal("the publishing connection was closed by the refused publish")
	}
	if l := logs.String(); strings.Contains(l, "connection lost") {
		t.Fatalf("a connection was lost over the refused topic:\n%s", l)
	}
}
