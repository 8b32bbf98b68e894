package sqs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// TestMain lets the test binary double as the consumer process that the
// crash test kills with SIGKILL while it holds an unacked message.
// killedOptions give the killed-consumer conformance run a short lease:
// SQS hands a received message out again after visibility_timeout.
var killedOptions = map[string]string{"visibility_timeout": "2s"}

func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(ctx context.Context) (driver.Transport, error) {
		return open(ctx, testenv.Getenv("MSGKIT_TEST_AWS_ENDPOINT", "http://127.0.0.1:4100"), killedOptions)
	})
	testenv.RunDyingConsumer(func(url string) (driver.Transport, error) {
		return open(context.Background(), url, map[string]string{"visibility_timeout": "2s"})
	})
	os.Exit(m.Run())
}

func topicName(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

func mustOpen(t *testing.T, endpoint string, extra map[string]string) *testenv.Transport {
	t.Helper()
	tr, err := open(context.Background(), endpoint, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func mustClient(t *testing.T, endpoint string, extra map[string]string) *sdk.Client {
	t.Helper()
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(extra)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// rawSQS is a plain aws-sdk-go-v2 client on the emulator, playing a non-Go
// (or non-msgkit) producer and consumer.
func rawSQS(endpoint string) *awssqs.Client {
	return awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

func queueURL(t *testing.T, c *awssqs.Client, name string) string {
	t.Helper()
	out, err := c.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("queue %q: %v", name, err)
	}
	return aws.ToString(out.QueueUrl)
}

func textMessages(n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(uuid.NewString(), []byte(fmt.Sprintf("message %d", i)))
	}
	return msgs
}

func TestPublishSendsFullBatches(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	tr := mustOpen(t, proxy.URL, nil)
	topic := topicName("batch")
	if err := tr.Publisher().Publish(topic, textMessages(25)...); err != nil {
		t.Fatal(err)
	}
	if calls, entries := proxy.Calls("SendMessageBatch"), proxy.BatchEntries("SendMessageBatch"); calls != 3 || entries != 25 {
		t.Fatalf("25 messages in one Publish must take 3 SendMessageBatch calls (10+10+5), took %d calls carrying %d entries", calls, entries)
	}
	if n := proxy.Calls("SendMessage"); n != 0 {
		t.Fatalf("publishing must never send one message per call; SendMessage was called %d times", n)
	}
}

func TestConcurrentPublishesShareBatches(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	proxy.Delay("SendMessageBatch", 50*time.Millisecond) // a round trip to a distant region
	tr := mustOpen(t, proxy.URL, nil)
	topic := topicName("coalesce")
	if err := tr.Publisher().Publish(topic, textMessages(1)...); err != nil { // create the queue first
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, m := range textMessages(n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tr.Publisher().Publish(topic, m)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	calls := proxy.Calls("SendMessageBatch") - 1
	if entries := proxy.BatchEntries("SendMessageBatch") - 1; entries != n {
		t.Fatalf("%d messages published, %d sent", n, entries)
	}
	// 8 senders each hold a call open for 50ms; what arrives meanwhile
	// waits and leaves together. One call per message would be 200.
	if calls > n/4 {
		t.Fatalf("%d concurrent one-message publishes took %d SendMessageBatch calls; waiting messages must share calls (want at most %d)", n, calls, n/4)
	}
	t.Logf("%d concurrent one-message publishes: %d calls, %.1f messages per call", n, calls, float64(n)/float64(calls))
}

func TestReceiveLongPollsForTenAndDeletesInBatches(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	proxy := testenv.NewAWSProxy(t, endpoint)
	topic := topicName("receive")
	pub := mustOpen(t, endpoint, nil)
	if err := pub.Publisher().Publish(topic, textMessages(30)...); err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, proxy.URL, map[string]string{"wait_time": "2s"})
	var handled atomic.Int32
	all := make(chan struct{})
	if _, err := c.Subscribe(context.Background(), topic, "g", func(ctx context.Context, m *sdk.Message) error {
		if handled.Add(1) == 30 {
			close(all)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of 30 messages handled within 20s", handled.Load())
	}
	if err := c.Close(context.Background()); err != nil { // flushes the pending deletes
		t.Fatal(err)
	}
	most := 0
	for _, r := range proxy.Receives() {
		if r.Max != 10 || r.Wait != 2 {
			t.Fatalf("every ReceiveMessage must ask for 10 messages and long-poll for wait_time (2s); one asked for %d, waiting %ds", r.Max, r.Wait)
		}
		most = max(most, r.Got)
	}
	if most != 10 {
		t.Fatalf("with 30 messages waiting, a ReceiveMessage call must return 10; the most any returned was %d", most)
	}
	if n := proxy.Calls("DeleteMessage"); n != 0 {
		t.Fatalf("acks must be deleted in batches; DeleteMessage was called %d times", n)
	}
	calls, entries := proxy.Calls("DeleteMessageBatch"), proxy.BatchEntries("DeleteMessageBatch")
	if entries != 30 || calls > 10 {
		t.Fatalf("30 acks must be deleted in batches: %d DeleteMessageBatch calls carried %d entries (want 30 entries in at most 10 calls)", calls, entries)
	}
}

func TestIdleSubscriberLongPolls(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	c := mustClient(t, proxy.URL, map[string]string{"wait_time": "2s"})
	if _, err := c.Subscribe(context.Background(), topicName("idle"), "g", func(context.Context, *sdk.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(5 * time.Second) // measuring an idle period: there is nothing to wait for
	idle := time.Since(start)
	calls := proxy.Calls("ReceiveMessage")
	if limit := int(idle/(2*time.Second)) + 2; calls > limit {
		t.Fatalf("an idle subscriber must long-poll: %d ReceiveMessage calls in %v with wait_time 2s (want at most %d)", calls, idle.Round(time.Millisecond), limit)
	}
}

func TestLongRunningHandlerKeepsItsMessageInvisible(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	proxy := testenv.NewAWSProxy(t, endpoint)
	// Extended every 1.5s: a late extension call has 1.5s to spare even on
	// a loaded machine.
	opts := map[string]string{"visibility_timeout": "3s"}
	topic := topicName("slow")
	slow, other := mustClient(t, proxy.URL, opts), mustClient(t, endpoint, opts)

	started, release := make(chan string, 1), make(chan struct{})
	if _, err := slow.Subscribe(context.Background(), topic, "g", func(ctx context.Context, m *sdk.Message) error {
		started <- m.ID
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	msg := sdk.NewMessage([]byte("takes a while"))
	if err := slow.Publish(context.Background(), topic, msg); err != nil {
		t.Fatal(err)
	}
	id := testenv.Await(t, started, "the slow handler to receive the message")
	// The other subscriber joins the group only now: had it been there from
	// the start, it could win the message and the test would prove nothing
	// (it failed CI that way once).
	stolen := make(chan string, 10)
	if _, err := other.Subscribe(context.Background(), topic, "g", func(ctx context.Context, m *sdk.Message) error {
		stolen <- m.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Hold the message for over 2 visibility timeouts; without extension
	// it would reappear and the other subscriber would get it.
	select {
	case got := <-stolen:
		t.Fatalf("message %s was handed to another consumer while its handler was still running: visibility was not extended", got)
	case <-time.After(7 * time.Second):
	}
	if n := proxy.Calls("ChangeMessageVisibilityBatch"); n < 2 {
		t.Fatalf("a handler running over 2 visibility timeouts must have its message's visibility extended at least twice, was %d times", n)
	}
	close(release)
	select {
	case got := <-stolen:
		t.Fatalf("message %s was redelivered after its handler acked it", got)
	case <-time.After(3 * time.Second):
	}
	if id != msg.ID {
		t.Fatalf("handled %s, published %s", id, msg.ID)
	}
}

func TestConsumerKilledBeforeAckIsRedelivered(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	topic := topicName("crash")
	tr := mustOpen(t, endpoint, map[string]string{"visibility_timeout": "2s"})

	dying := testenv.StartDyingConsumer(t, endpoint, topic, "g")
	sent := message.NewMessage(uuid.NewString(), []byte("work"))
	if err := tr.Publisher().Publish(topic, sent); err != nil {
		t.Fatal(err)
	}
	if held := dying.Killed(); held != sent.UUID {
		t.Fatalf("the killed consumer should have held %s, held %s", sent.UUID, held)
	}

	sub, _ := tr.Subscriber("g")
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	got := testenv.AwaitMessage(t, ch, "the message the killed consumer held, after its visibility timeout")
	if got.UUID != sent.UUID {
		t.Fatalf("redelivered %s, want %s", got.UUID, sent.UUID)
	}
	got.Ack()
}

func TestFIFOGroupsByOrderingKeyAndDeduplicatesByID(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	c := mustClient(t, proxy.URL, map[string]string{"fifo": "true"})
	keyed := sdk.NewMessage([]byte("a"))
	keyed.OrderingKey = "customer-42"
	unkeyed := sdk.NewMessage([]byte("b"))
	if err := c.Publish(context.Background(), topicName("fifo"), keyed, unkeyed); err != nil {
		t.Fatal(err)
	}
	sent := proxy.Sent()
	if len(sent) != 2 {
		t.Fatalf("want 2 messages sent, got %d", len(sent))
	}
	if sent[0].GroupID != "customer-42" || sent[0].DedupID != keyed.ID {
		t.Fatalf("the ordering key must be the MessageGroupId and the message id the deduplication id: got group %q, dedup %q (id %s)",
			sent[0].GroupID, sent[0].DedupID, keyed.ID)
	}
	if sent[1].GroupID != unkeyed.ID || sent[1].DedupID != unkeyed.ID {
		t.Fatalf("a message without ordering key must get a group of its own (its id), got group %q", sent[1].GroupID)
	}
}

func TestRedrivePolicyMovesRepeatedFailuresToTheDeadLetterQueue(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	topic := topicName("redrive")
	c := mustClient(t, endpoint, map[string]string{"max_receive_count": "2"})
	var deliveries atomic.Int32
	if _, err := c.Subscribe(context.Background(), topic, "g", func(ctx context.Context, m *sdk.Message) error {
		deliveries.Add(1)
		return errors.New("always fails")
	}); err != nil {
		t.Fatal(err)
	}
	msg := sdk.NewMessage([]byte("poison"))
	msg.EventType = "order.created"
	if err := c.Publish(context.Background(), topic, msg); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(endpoint)
	dlq := queueURL(t, raw, sqs.QueueName("ct-", topic, false)+"-dlq")
	var got *types.Message
	deadline := time.Now().Add(20 * time.Second)
	for got == nil && time.Now().Before(deadline) {
		out, err := raw.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: aws.String(dlq),
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) > 0 {
			got = &out.Messages[0]
		}
	}
	if got == nil {
		t.Fatalf("after %d failed deliveries the message must be in the dead-letter queue <queue>-dlq; it is not", deliveries.Load())
	}
	if id := aws.ToString(got.MessageAttributes["msgkit-id"].StringValue); id != msg.ID {
		t.Fatalf("the dead-letter queue holds %s, want %s", id, msg.ID)
	}
	if aws.ToString(got.MessageAttributes[sdk.KeyEventType].StringValue) != "order.created" || aws.ToString(got.Body) != "poison" {
		t.Fatalf("the dead-lettered message must keep its body and attributes: %+v", got)
	}
	if n := deliveries.Load(); n < 2 {
		t.Fatalf("max_receive_count 2: the handler must have seen the message twice before it was dead-lettered, saw it %d times", n)
	}
}

func TestStandardAttributesAreNativeAndTheRestPacked(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	c := mustClient(t, endpoint, nil)
	topic := topicName("attrs")
	msg := sdk.NewMessage([]byte(`{"order":42}`))
	msg.EventType, msg.ContentType, msg.CorrelationID = "order.created", "application/json", "corr-1"
	msg.Metadata = map[string]string{}
	for i := 0; i < 15; i++ {
		msg.Metadata[fmt.Sprintf("x-extra-%02d", i)] = fmt.Sprintf("value %d", i)
	}
	msg.Metadata["aws.reserved"] = "SQS refuses this name natively"
	if err := c.Publish(context.Background(), topic, msg); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(endpoint)
	out, err := raw.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL(t, raw, sqs.QueueName("ct-", topic, false))), WaitTimeSeconds: 5, MessageAttributeNames: []string{"All"}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(out.Messages))
	}
	m := out.Messages[0]
	if aws.ToString(m.Body) != `{"order":42}` {
		t.Fatalf("a text payload must be the body as is for other consumers, got %q", aws.ToString(m.Body))
	}
	if len(m.MessageAttributes) > 10 {
		t.Fatalf("SQS carries at most 10 attributes; the driver sent %d", len(m.MessageAttributes))
	}
	for k, want := range map[string]string{sdk.KeyEventType: "order.created", sdk.KeyContentType: "application/json", sdk.KeyCorrelationID: "corr-1", "msgkit-id": msg.ID} {
		if got := aws.ToString(m.MessageAttributes[k].StringValue); got != want {
			t.Errorf("attribute %q must be a native SQS attribute for other consumers: got %q, want %q", k, got, want)
		}
	}
	var packed map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(m.MessageAttributes["msgkit-metadata"].StringValue)), &packed); err != nil {
		t.Fatalf("metadata beyond the native attributes must be packed as JSON in msgkit-metadata: %v", err)
	}
	if packed["aws.reserved"] != "SQS refuses this name natively" {
		t.Fatalf("a name SQS refuses must travel packed, got %v", packed)
	}
}

func TestMessagesFromOtherProducersAreRead(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	topic := topicName("foreign")
	c := mustClient(t, endpoint, nil)
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(context.Background(), topic, "g", func(ctx context.Context, m *sdk.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(endpoint)
	sent, err := raw.SendMessage(context.Background(), &awssqs.SendMessageInput{
		QueueUrl: aws.String(queueURL(t, raw, sqs.QueueName("ct-", topic, false))), MessageBody: aws.String("plain text"),
		MessageAttributes: map[string]types.MessageAttributeValue{sdk.KeyEventType: {DataType: aws.String("String"), StringValue: aws.String("ping")}}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Payload) != "plain text" || m.EventType != "ping" || m.ID != aws.ToString(sent.MessageId) {
			t.Fatalf("a message from a plain SQS producer must arrive with its body as payload, its attributes as metadata and SQS's MessageId as id; got payload %q, event type %q, id %q (SQS id %q)",
				m.Payload, m.EventType, m.ID, aws.ToString(sent.MessageId))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message from another producer never arrived")
	}
}

func TestOversizedMessageFailsBeforeAnyCall(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	tr := mustOpen(t, proxy.URL, nil)
	big := message.NewMessage(uuid.NewString(), []byte(strings.Repeat("x", 300<<10)))
	err := tr.Publisher().Publish(topicName("big"), big)
	if !errors.Is(err, sdk.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "307200") || !strings.Contains(err.Error(), "194560") {
		t.Fatalf("a message over the declared limit must fail with ErrPayloadTooLarge, its size and the limit; got %v", err)
	}
	if n := proxy.Calls("SendMessageBatch") + proxy.Calls("CreateQueue") + proxy.Calls("GetQueueUrl"); n != 0 {
		t.Fatalf("an oversized message must fail before any network call; %d calls were made", n)
	}

	c := mustClient(t, proxy.URL, nil)
	err = c.Publish(context.Background(), topicName("big"), sdk.NewMessage(make([]byte, 200<<10)))
	if !errors.Is(err, sdk.ErrPayloadTooLarge) {
		t.Fatalf("the client must refuse a payload above the declared MaxPayloadBytes with ErrPayloadTooLarge, got %v", err)
	}
}

func TestMissingQueueWithoutCreation(t *testing.T) {
	tr := mustOpen(t, testenv.AWSEndpoint(t), map[string]string{"create": "false"})
	topic := topicName("absent")
	err := tr.Publisher().Publish(topic, textMessages(1)...)
	if err == nil || !strings.Contains(err.Error(), sqs.QueueName("ct-", topic, false)) || !strings.Contains(err.Error(), "create") {
		t.Fatalf("publishing to a missing queue with create false must name the queue and the fix, got %v", err)
	}
	sub, _ := tr.Subscriber("g")
	if _, err := sub.Subscribe(context.Background(), topic); err == nil || !strings.Contains(err.Error(), "create: true") {
		t.Fatalf("subscribing to a missing queue with create false must say how to fix it, got %v", err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	base := func(kv ...string) map[string]string {
		o := map[string]string{"region": "us-east-1"}
		for i := 0; i < len(kv); i += 2 {
			o[kv[i]] = kv[i+1]
		}
		return o
	}
	cases := []struct {
		name string
		url  string
		opts map[string]string
		want []string
	}{
		{"endpoint not http", "ftp://127.0.0.1:4100", base(), []string{`"url"`, "http://"}},
		{"credentials in url", "http://AKIA:hunter2@127.0.0.1:4100", base(), []string{`"url"`, "access_key_id"}},
		{"http to another machine", "http://sqs.internal:4100", base(), []string{`"url"`, "unencrypted", "allow_http"}},
		{"half credentials", "", base("access_key_id", "AKIA"), []string{"options.access_key_id", "secret_access_key"}},
		{"long poll too long", "", base("wait_time", "25s"), []string{"options.wait_time", "20s"}},
		{"visibility not whole seconds", "", base("visibility_timeout", "1500ms"), []string{"options.visibility_timeout", "whole seconds"}},
		{"unknown option", "", base("prefetch", "10"), []string{"prefetch"}},
		{"prefix with a dot", "", base("prefix", "team.a"), []string{"options.prefix", "letters, digits"}},
		{"redrive limit", "", base("max_receive_count", "5000"), []string{"options.max_receive_count", "1..1000"}},
		{"no region", "", map[string]string{}, []string{"options.region", "AWS_REGION"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := sqs.Driver{}.Open(context.Background(), sdk.Config{Driver: "sqs", URL: c.url, Options: c.opts})
			if err == nil {
				t.Fatal("want an error")
			}
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *sdk.ConfigError, got %T: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q should mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error leaks a secret: %v", err)
			}
		})
	}
	// Allowed, the endpoint is tried: Open fails because nothing answers
	// there, not because of the configuration.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := sqs.Driver{}.Open(ctx, sdk.Config{Driver: "sqs", URL: "http://sqs.internal:4100", Options: base("allow_http", "true")})
	var ce *sdk.ConfigError
	if errors.As(err, &ce) || err == nil || !strings.Contains(err.Error(), "no answer from the endpoint") {
		t.Fatalf("allow_http: true must let an http:// endpoint elsewhere be tried, got %v", err)
	}
}

func TestUnreachableEndpointNamesHostAndHidesSecret(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-SECRET"
	_, err := sqs.Driver{}.Open(context.Background(), sdk.Config{Driver: "sqs", URL: "http://127.0.0.1:1",
		Options: map[string]string{"region": "us-east-1", "access_key_id": "AKIAEXAMPLE", "secret_access_key": secret}})
	if err == nil {
		t.Fatal("opening an endpoint where nothing listens must fail")
	}
	for _, want := range []string{"127.0.0.1:1", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should name the endpoint and the cause (%q): %v", want, err)
		}
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error leaks the secret key: %v", err)
	}
}

// New runs on the caller's AWS configuration and names a bad option.
func TestNewOnTheCallersAWSConfig(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	ac := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	var ce *sdk.ConfigError
	if _, err := sqs.New(ac, sqs.Options{Endpoint: endpoint, WaitTime: 1500 * time.Millisecond}); !errors.As(err, &ce) || ce.Key != "options.wait_time" {
		t.Fatalf("a wait in part seconds must be a ConfigError naming it, got %v", err)
	}
	if _, err := sqs.New(ac, sqs.Options{Endpoint: "http://user:Secr3t@[::1"}); err == nil || strings.Contains(err.Error(), "Secr3t") {
		t.Fatalf("an endpoint that does not parse must be refused without its password, got %v", err)
	}
	tr, err := sqs.New(ac, sqs.Options{Endpoint: endpoint, Prefix: "ct-", WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RoundTrip(t, tr, topicName("new"))
}

// A second group on a topic is refused, saying why and what to use: SQS
// would split the messages between the groups instead of copying them.
func TestSecondGroupOnATopicIsRefused(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	topic := "ct-groups-" + uuid.NewString()[:8]
	ok := func(context.Context, *sdk.Message) error { return nil }
	if _, err := c.Subscribe(context.Background(), topic, "billing", ok); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(context.Background(), topic, "billing", ok); err != nil {
		t.Fatalf("a second member of the same group must be allowed: %v", err)
	}
	_, err = c.Subscribe(context.Background(), topic, "shipping", ok)
	if err == nil || !strings.Contains(err.Error(), `consumed by group "billing"`) || !strings.Contains(err.Error(), "sns driver") {
		t.Fatalf("a second group must be refused naming the first and the sns driver, got %v", err)
	}
	// Another client (another service instance) is refused too: the group
	// is recorded on the queue.
	other, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Subscribe(context.Background(), topic, "shipping", ok); err == nil {
		t.Fatal("a second group from another client must be refused too")
	}
}

// Two topics whose names map to one queue (queue names keep only letters,
// digits, '-' and '_') are not consumed from it together: the second is
// refused naming the first, from this client and from another.
func TestTopicsSharingAQueueNameAreRefused(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	open := func() *sdk.Client {
		c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(nil)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	c, other := open(), open()
	id := uuid.NewString()[:8]
	dotted, dashed := "ct-shared."+id, "ct-shared-"+id
	ok := func(context.Context, *sdk.Message) error { return nil }
	if _, err := c.Subscribe(context.Background(), dotted, "billing", ok); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Subscribe(context.Background(), dotted, "billing", ok); err != nil {
		t.Fatalf("a second member of the same topic and group must be allowed: %v", err)
	}
	for _, cl := range []*sdk.Client{c, other} {
		_, err := cl.Subscribe(context.Background(), dashed, "billing", ok)
		if !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), `holds the messages of topic "`+dotted+`"`) || !strings.Contains(err.Error(), "Rename one") {
			t.Fatalf("topic %q maps to the queue of %q: Subscribe must be refused naming it, got %v", dashed, dotted, err)
		}
	}
}

// A publish to a topic whose name maps to another topic's queue is refused
// naming that topic, whether the other's subscriber or its publisher came
// first; the other topic's consumer gets only its own messages.
func TestPublishToATopicMappedToAnotherTopicsQueueIsRefused(t *testing.T) {
	testenv.CheckTopicsMappedToOneName(t, "sqs", "holds the messages of topic %q")
}

// A publisher whose policy does not grant the tag calls (the publish-only
// policy of docs/security.md without them) publishes unchecked instead of
// failing, and asks only once per topic.
func TestPublishWithoutTagPermissionsIsUnchecked(t *testing.T) {
	testenv.CheckPublishWithoutTagPermissions(t, "sqs", "ListQueueTags", "TagQueue", "AccessDenied")
}

// 64 goroutines publishing one message per call, again and again, against
// a 20 ms round trip: the publishes a call's answer releases come back at
// once, and must leave together instead of one by one behind a busy call.
func TestSustainedConcurrentPublishesFillBatches(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	proxy.Delay("SendMessageBatch", 20*time.Millisecond)
	tr := mustOpen(t, proxy.URL, nil)
	topic := topicName("sustained")
	if err := tr.Publisher().Publish(topic, textMessages(1)...); err != nil { // create the queue first
		t.Fatal(err)
	}
	calls0, entries0 := proxy.Calls("SendMessageBatch"), proxy.BatchEntries("SendMessageBatch")
	const goroutines, each = 64, 60
	// The target is for 64 goroutines publishing: it is measured from when
	// every goroutine's first publish has returned until the first
	// goroutine is done; the run-up and the tail, with fewer publishers,
	// are held to a lower bound over the whole run.
	type snapshot struct{ calls, entries int }
	from, to := testenv.SteadyPublishing(t, goroutines, each,
		func() error { return tr.Publisher().Publish(topic, textMessages(1)...) },
		func() snapshot {
			return snapshot{proxy.Calls("SendMessageBatch"), proxy.BatchEntries("SendMessageBatch")}
		})
	calls := proxy.Calls("SendMessageBatch") - calls0
	entries := proxy.BatchEntries("SendMessageBatch") - entries0
	if entries != goroutines*each {
		t.Fatalf("%d messages published, %d sent", goroutines*each, entries)
	}
	overall := float64(entries) / float64(calls)
	if to.calls-from.calls < 20 {
		t.Fatalf("the 64 goroutines never published together for 20 calls (from %+v to %+v): the run is too short to measure", from, to)
	}
	perCall := float64(to.entries-from.entries) / float64(to.calls-from.calls)
	t.Logf("%d goroutines publishing one message at a time: %.1f messages per call while all publish (%d calls), %.1f over the whole run (%d calls)",
		goroutines, perCall, to.calls-from.calls, overall, calls)
	if overall < 7 {
		t.Fatalf("%.1f messages per SendMessageBatch call over the whole run, with its run-up and tail; want at least 7 (%d calls for %d messages)", overall, calls, entries)
	}
	if perCall < 8 {
		t.Fatalf("%.1f messages per SendMessageBatch call while all 64 goroutines publish; want at least 8 (%d calls for %d messages)",
			perCall, to.calls-from.calls, to.entries-from.entries)
	}
}
