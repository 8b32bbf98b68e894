package middleware_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/adapters/memory"
	_ "github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// A message whose metadata cannot be published as it is (a non-Go producer
// sent bytes that are not UTF-8) is still dead-lettered, its metadata
// packed in one header, instead of failing, and coming back, for ever;
// the error text's own bad bytes are replaced. Replay unpacks it and
// reports why it cannot publish it, leaving it in the dead-letter topic.
func TestUnpublishableMetadataIsPackedInTheDeadLetter(t *testing.T) {
	bad := map[string]string{"bin": "\xff\xfe", "ok": "v", "bad\xffkey": "x"}
	run := func(t *testing.T, cfg sdk.Config, inject func(topic string)) {
		c, err := sdk.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		b := &broker{t: t, client: c, prefix: "ct-mw-" + uuid.NewString()[:8] + "-"}
		dlq := b.inspect("work.dlq")
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			return sdk.Permanent(errors.New("cannot read \xff this"))
		}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: c})))
		inject(b.topic("work"))
		dead := testenv.Await(t, dlq, "the dead letter of the message with unpublishable metadata")
		if dead.ID != "m-1" || string(dead.Payload) != "payload" {
			t.Fatalf("the dead letter must be the message: id %q payload %q", dead.ID, dead.Payload)
		}
		reason := dead.Get(middleware.KeyDLQError)
		if !utf8.ValidString(reason) || !strings.Contains(reason, "cannot read") || !strings.Contains(reason, middleware.KeyDLQMetadata) {
			t.Fatalf("%s must be UTF-8 and say the metadata is packed: %q", middleware.KeyDLQError, reason)
		}
		var packed map[string]string
		if err := json.Unmarshal([]byte(dead.Get(middleware.KeyDLQMetadata)), &packed); err != nil {
			t.Fatalf("%s: %v", middleware.KeyDLQMetadata, err)
		}
		got := map[string]string{}
		for k, v := range packed {
			key, _ := base64.StdEncoding.DecodeString(k)
			value, _ := base64.StdEncoding.DecodeString(v)
			got[string(key)] = string(value)
		}
		for k, v := range bad {
			if got[k] != v {
				t.Fatalf("packed metadata %q = %q, sent %q (all: %q)", k, got[k], v, got)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := middleware.Replay(ctx, c, b.topic("work.dlq"), middleware.DefaultReplayGroup, 0, 2*time.Second)
		if n != 0 || !errors.Is(err, sdk.ErrInvalidMetadata) {
			t.Fatalf("Replay must unpack the metadata and report why it cannot publish it: moved %d, %v", n, err)
		}
	}
	t.Run("memory", func(t *testing.T) {
		url := "memory://dlq-pack-" + uuid.NewString()[:8]
		raw, err := memory.Driver{}.Open(context.Background(), sdk.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = raw.Close() })
		run(t, sdk.Config{URL: url}, func(topic string) {
			if err := raw.SendBatch(context.Background(), topic, []*driver.Message{{ID: "m-1", Payload: []byte("payload"), Metadata: bad}}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("redis", func(t *testing.T) {
		url := testenv.Redis(t)
		opts, err := goredis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rc := goredis.NewClient(opts)
		t.Cleanup(func() { _ = rc.Close() })
		var topics []string
		t.Cleanup(func() {
			if len(topics) > 0 {
				deleteRedisStreams(url, strings.TrimSuffix(topics[0], "work"))
			}
		})
		run(t, sdk.Config{Driver: "redis", URL: url}, func(topic string) {
			topics = append(topics, topic)
			values := []any{"id", "m-1", "payload", "payload"}
			for k, v := range bad {
				values = append(values, "h:"+k, v)
			}
			if err := rc.XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: values}).Err(); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// A message whose metadata fits the broker, but not beside the dead-letter
// headers, even packed, is dead-lettered with its metadata and payload in
// the payload (KeyDLQEnvelope), and Replay puts back both as they were.
// On SQS, which carries 8 KiB of metadata a message.
func TestMetadataTooLargeEvenPackedGoesInTheDeadLettersPayload(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: proxy.URL, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	topic := "ct-mw-env-" + uuid.NewString()[:8]
	sent := &sdk.Message{ID: "m-1", Payload: []byte("payload"), Metadata: map[string]string{}}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		sent.Metadata[k] = strings.Repeat(k, 1200) // 6 KB: fits alone, not with the headers
	}
	var failed bool
	replayed := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(context.Background(), topic, "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		if !failed {
			failed = true
			return sdk.Permanent(errors.New("cannot process: " + strings.Repeat("why ", 800)))
		}
		replayed <- m
		return nil
	}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: c}))); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), topic, sent); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// Until the dead letter is there: Replay says when it found none.
		n, err := middleware.Replay(ctx, c, topic+".dlq", middleware.DefaultReplayGroup, 1, time.Second)
		if n == 1 && err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no dead letter replayed within 30s: moved %d, %v", n, err)
		}
	}
	enveloped := false
	for _, e := range proxy.Sent() {
		enveloped = enveloped || strings.HasPrefix(e.Body, `{"metadata":`)
	}
	if !enveloped {
		t.Fatal("the dead letter was not sent as an envelope")
	}
	m := testenv.Await(t, replayed, "the replayed message")
	if m.ID != sent.ID || string(m.Payload) != "payload" {
		t.Fatalf("replayed id %q payload %q, sent %q %q", m.ID, m.Payload, sent.ID, sent.Payload)
	}
	for k, v := range sent.Metadata {
		if m.Get(k) != v {
			t.Fatalf("replayed metadata %q has %d bytes, sent %d", k, len(m.Get(k)), len(v))
		}
	}
	if m.Get(middleware.KeyDLQEnvelope) != "" || m.Get(middleware.KeyDLQError) != "" {
		t.Fatalf("the replayed message still carries dead-letter headers: %v", m.Metadata)
	}
}
