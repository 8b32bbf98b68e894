// Package jetstreamdriver is a complete msgkit driver for NATS JetStream in
// about 250 lines, the one docs/writing-an-adapter.md walks through. It
// does the broker calls and nothing else: handler concurrency, ack
// batching, redelivery backoff, draining on close and publish retries are
// the delivery engine's. It passes the conformance suite for what it
// declares.
//
// It is an example: adapters/nats is the driver to run. That one also
// writes Watermill's wire format, uses streams the platform already owns,
// answers requests, and pulls without a new subscription per fetch.
//
//	import _ "github.com/msgkit/msgkit/examples/jetstreamdriver"
//	client, err := sdk.Open(ctx, sdk.Config{Driver: "jetstream-example", URL: "nats://127.0.0.1:4222"})
package jetstreamdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "jetstream-example"

func init() { sdk.Register(DriverName, Driver{}) }

// Options are the keys of the config file's options section, as fields.
type Options struct {
	// BatchSize is how many messages one fetch asks for (default 100).
	BatchSize int `option:"batch_size" default:"100" min:"1" help:"messages asked for per fetch"`
	// AckWait is how long a message stays with a member before the server
	// hands it to another (default 30s).
	AckWait time.Duration `option:"ack_wait" default:"30s" min:"1s"`
	// FetchWait is how long one fetch waits for messages (default 1s).
	FetchWait time.Duration `option:"fetch_wait" default:"1s" min:"10ms"`
}

// Driver opens transports from a config.
type Driver struct{}

// Open validates cfg and connects by ctx's deadline.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	var o Options
	if err := cfg.OptionsSection().Decode(&o); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, cfg.Invalid("url", nil, "the %s driver needs the server's URL, such as nats://127.0.0.1:4222", DriverName)
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	nc, err := nats.Connect(cfg.URL, nats.Timeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("%s: connect to %s: %w", DriverName, sdk.RedactURL(cfg.URL), err)
	}
	t, err := New(nc, o)
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.owned = true
	return t, nil
}

// New returns a transport on the caller's connection; Close leaves it open.
func New(nc *nats.Conn, o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &Transport{nc: nc, js: js, o: o, streams: map[string]bool{}}, nil
}

// Transport is an open JetStream transport.
type Transport struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	o     Options
	owned bool
	subs  driver.Subscriptions[*subscription]

	mu      sync.Mutex
	streams map[string]bool // topics whose stream is known to exist
}

// Capabilities: every group gets every message, kept on disk, from the
// start of the stream unless told otherwise.
func (t *Transport) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		ConsumerGroups: true, DurableGroups: true, NewGroupsReceiveHistory: true, ChoosesGroupStart: true,
		Persistent: true, MaxPayloadBytes: int(t.nc.MaxPayload()) - headerRoom, MaxMetadataBytes: maxMetadata,
	}
}

// The metadata travels as one JSON header, which escapes what a NATS
// header line cannot hold; headerRoom keeps the server's max_payload for it.
const (
	headerRoom  = 64 << 10
	maxMetadata = 8 << 10 // JSON escaping can grow it sixfold
	idHeader    = "Msgkit-Id"
	mdHeader    = "Msgkit-Metadata"
)

// SendOptions: up to 1000 messages a call, confirmed together.
func (t *Transport) SendOptions() driver.SendOptions {
	return driver.SendOptions{MaxMessages: 1000, Timeout: 30 * time.Second}
}

// SendBatch publishes msgs without waiting for each ack in turn, then
// waits for all of them.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if err := t.ensureStream(ctx, topic); err != nil {
		return err
	}
	errs := make(driver.BatchError, len(msgs))
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		md, _ := json.Marshal(m.Metadata) // a map of strings always encodes
		id, _ := json.Marshal(m.ID)       // quoted: a header line would lose a line break or edge spaces
		msg := &nats.Msg{Subject: topic, Data: m.Payload, Header: nats.Header{idHeader: {string(id)}, mdHeader: {string(md)}}}
		acks[i], errs[i] = t.js.PublishMsgAsync(msg)
	}
	for i, a := range acks {
		if a == nil {
			continue
		}
		select {
		case <-a.Ok():
		case err := <-a.Err():
			errs[i] = err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return errs
}

// maxSubject keeps every request a topic goes into within the server's
// control line (max_control_line, 4096 bytes by default): the server
// closes the whole connection over a longer one.
const maxSubject = 3072

// maxConsumerName is the longest consumer name JetStream takes.
const maxConsumerName = 255

// ensureStream creates the stream that stores topic, once.
func (t *Transport) ensureStream(ctx context.Context, topic string) error {
	if len(topic) > maxSubject {
		return sdk.InvalidName(fmt.Errorf("%s: topic %s is longer than the %d bytes this driver sends as a subject", DriverName, sdk.QuoteName(topic), maxSubject))
	}
	t.mu.Lock()
	known := t.streams[topic]
	t.mu.Unlock()
	if known {
		return nil
	}
	_, err := t.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: streamName(topic), Subjects: []string{topic}})
	if err != nil {
		return fmt.Errorf("%s: create the stream of %s: %w", DriverName, sdk.QuoteName(topic), err)
	}
	t.mu.Lock()
	t.streams[topic] = true
	t.mu.Unlock()
	return nil
}

// streamName makes the name of the stream the driver creates for a topic:
// msgkit-<topic>-<hash>, with what a stream name cannot hold ('.', '*',
// '>', spaces) replaced; the hash keeps "a.b" and "a_b" apart.
func streamName(topic string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(topic))
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, topic)
	return fmt.Sprintf("msgkit-%s-%08x", clean, h.Sum32())
}

// OpenSubscription joins group, a durable consumer on topic's stream that
// exists when it returns.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("%s: transport %w", DriverName, driver.ErrClosed)
	}
	if len(group) > maxConsumerName {
		// Sent in the request's subject: refused here, before the server
		// would close the connection over a long one.
		return nil, sdk.InvalidName(fmt.Errorf("%s: group %s is the consumer's name, and JetStream takes at most %d bytes", DriverName, sdk.QuoteName(group), maxConsumerName))
	}
	if err := t.ensureStream(ctx, topic); err != nil {
		return nil, err
	}
	policy := jetstream.DeliverNewPolicy
	if driver.GroupStartOldest(ctx, true) {
		policy = jetstream.DeliverAllPolicy
	}
	// Create keeps an existing consumer as it is: the group carries on
	// where it stopped.
	c, err := t.js.CreateConsumer(ctx, streamName(topic), jetstream.ConsumerConfig{
		Durable: group, AckPolicy: jetstream.AckExplicitPolicy, AckWait: t.o.AckWait, DeliverPolicy: policy, MaxDeliver: -1,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = t.js.Consumer(ctx, streamName(topic), group)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: join group %s on %s: %w", DriverName, sdk.QuoteName(group), sdk.QuoteName(topic), err)
	}
	s := &subscription{t: t, c: c, stream: streamName(topic)}
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("%s: transport %w", DriverName, err)
	}
	return s, nil
}

// OpenReplySubscription: request/reply is not declared.
func (t *Transport) OpenReplySubscription(context.Context, string) (driver.Subscription, error) {
	return nil, errors.New(DriverName + ": request/reply is not supported")
}

// RemoveGroup: removing groups is not declared.
func (t *Transport) RemoveGroup(context.Context, string, string) error {
	return fmt.Errorf("%s: removing consumer groups is not supported: %w", DriverName, errors.ErrUnsupported)
}

// IsRetryable: a server that did not answer in time, or a connection
// being re-established.
func (t *Transport) IsRetryable(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// As reaches the connection (**nats.Conn).
func (t *Transport) As(target any) bool {
	p, ok := target.(**nats.Conn)
	if ok {
		*p = t.nc
	}
	return ok
}

// Close closes the subscriptions and, when Open made it, the connection.
func (t *Transport) Close() error {
	first, err := t.subs.Close()
	if first && t.owned {
		t.nc.Close()
	}
	return err
}
