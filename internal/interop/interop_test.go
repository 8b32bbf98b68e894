// Package interop_test runs a Node service against msgkit on every network
// broker, in both directions, with each broker's usual Node client
// (amqplib, ioredis, kafkajs, the AWS SDK v3): what docs/interop.md tells a
// non-Go team to send and to expect must hold on the wire.
package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// nodeDir holds interop.js and its locked dependencies.
const nodeDir = "node"

// wireMessage is what interop.js sends or saw.
type wireMessage struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Correlation string `json:"correlation"`
	Key         string `json:"key"`
	PayloadB64  string `json:"payload_b64"`
	City        string `json:"city"`
}

func TestMain(m *testing.M) {
	if err := installNodeModules(); err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		if testenv.InCI() {
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "interop: skipping the Node interop tests (not in CI)")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// installNodeModules runs npm ci once, from package-lock.json.
func installNodeModules() error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not installed (apt-get install nodejs npm): %w", err)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "kafkajs")); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in internal/interop/node (needs the npm registry): %v\n%s", err, out)
	}
	return nil
}

// broker is one broker's setup: the msgkit config, and the names the Node
// side uses for a msgkit topic (a queue or SNS topic name on AWS).
type broker struct {
	cfg       sdk.Config
	nodeTopic func(topic string) string
	// consumeAfterPublish: the Node consumer reads a queue msgkit creates
	// on publish (SQS), so it starts after the publish.
	consumeAfterPublish bool
	// topicFirst: the Node consumer needs the topic to exist (Kafka), so
	// msgkit creates it before (EnsureGroup creates a group's topic).
	topicFirst bool
}

func brokers(t *testing.T) map[string]broker {
	same := func(s string) string { return s }
	aws := testenv.AWSOptions(nil)
	return map[string]broker{
		"rabbitmq": {cfg: sdk.Config{Driver: "rabbitmq", URL: testenv.RabbitMQ(t)}, nodeTopic: same},
		"redis":    {cfg: sdk.Config{Driver: "redis", URL: testenv.Redis(t)}, nodeTopic: same},
		"kafka":    {cfg: sdk.Config{Driver: "kafka", URL: testenv.Kafka(t), Options: map[string]string{"session_timeout": "6s", "heartbeat_interval": "1s"}}, nodeTopic: same, topicFirst: true},
		"sqs": {cfg: sdk.Config{Driver: "sqs", URL: testenv.AWSEndpoint(t), Options: aws},
			nodeTopic: func(s string) string { return sqs.QueueName(aws["prefix"], s, false) }, consumeAfterPublish: true},
		"sns": {cfg: sdk.Config{Driver: "sns", URL: testenv.AWSEndpoint(t), Options: aws},
			nodeTopic: func(s string) string { return sns.TopicName(aws["prefix"], s) }},
	}
}

// node starts interop.js; lines carries its stdout.
func node(t *testing.T, ctx context.Context, args ...string) (<-chan string, func() error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "node", append([]string{"interop.js"}, args...)...)
	cmd.Dir = nodeDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("node interop.js %s: %w\n%s", strings.Join(args[:2], " "), err, stderr.String())
		}
		return nil
	}
}

// await returns the next line, or fails saying what was awaited.
func await(t *testing.T, lines <-chan string, wait func() error, what string) string {
	t.Helper()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("interop.js ended before %s: %v", what, wait())
		}
		return line
	case <-time.After(60 * time.Second):
		t.Fatalf("interop.js printed no %s within 60s", what)
	}
	return ""
}

// sample is the message both directions carry: a binary payload and
// non-ASCII metadata.
func sample() wireMessage {
	return wireMessage{ID: uuid.NewString(), Type: "com.example.invoice.paid", Correlation: "corr-" + uuid.NewString()[:8],
		Key: "customer-7", PayloadB64: base64.StdEncoding.EncodeToString([]byte{0, 0xff, 0xfe, 'i', '\n'}), City: "Zürich ✓"}
}

func TestNodeProducerToMsgkit(t *testing.T) {
	for name, b := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			c, err := sdk.Open(ctx, b.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			topic := "ct-node-" + uuid.NewString()[:8]
			got := make(chan *sdk.Message, 1)
			if _, err := c.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
				t.Fatal(err)
			}
			sent := sample()
			spec, _ := json.Marshal(sent)
			lines, wait := node(t, ctx, "produce", name, b.cfg.URL, b.nodeTopic(topic), string(spec))
			for range lines {
			}
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			m := testenv.Await(t, got, "the Node producer's message")
			payload, _ := base64.StdEncoding.DecodeString(sent.PayloadB64)
			if m.ID != sent.ID || m.EventType != sent.Type || m.CorrelationID != sent.Correlation || m.OrderingKey != sent.Key ||
				!bytes.Equal(m.Payload, payload) || m.Get("city") != sent.City {
				t.Fatalf("msgkit got id %q type %q correlation %q key %q payload %q city %q;\nNode sent %+v (payload %q)",
					m.ID, m.EventType, m.CorrelationID, m.OrderingKey, m.Payload, m.Get("city"), sent, payload)
			}
		})
	}
}

func TestMsgkitToNodeConsumer(t *testing.T) {
	for name, b := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			c, err := sdk.Open(ctx, b.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			topic := "ct-node-" + uuid.NewString()[:8]
			want := sample()
			payload, _ := base64.StdEncoding.DecodeString(want.PayloadB64)
			m := sdk.NewMessage(payload)
			m.ID, m.EventType, m.CorrelationID, m.OrderingKey = want.ID, want.Type, want.Correlation, want.Key
			m.Set("city", want.City)
			publish := func() {
				if err := c.Publish(ctx, topic, m); err != nil {
					t.Fatal(err)
				}
			}
			if b.consumeAfterPublish {
				publish()
			}
			if b.topicFirst {
				if err := c.EnsureGroup(ctx, topic, "msgkit-side"); err != nil {
					t.Fatal(err)
				}
			}
			lines, wait := node(t, ctx, "consume", name, b.cfg.URL, b.nodeTopic(topic), "node-billing")
			if line := await(t, lines, wait, `"ready"`); line != "ready" {
				t.Fatalf("interop.js printed %q, want ready", line)
			}
			if !b.consumeAfterPublish {
				publish()
			}
			var seen wireMessage
			if err := json.Unmarshal([]byte(await(t, lines, wait, "the message it consumed")), &seen); err != nil {
				t.Fatal(err)
			}
			for range lines {
			}
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if seen != want {
				t.Fatalf("the Node consumer saw %+v,\nmsgkit sent %+v", seen, want)
			}
		})
	}
}
