// Package rabbitmq is the RabbitMQ driver, on amqp091-go.
//
// Topology: by default each topic is a durable fanout exchange named after
// the topic, and each consumer group a durable queue "<topic>.<group>" bound
// to it. With the exchange option, all topics share one durable topic
// exchange and the topic is the routing key (the "platform.events"
// pattern; a group may subscribe to a pattern such as "order.*"). Queues are
// classic or quorum; dead_letter adds "<queue>.dlx"/"<queue>.dlq".
//
// Publishing uses a pool of long-lived channels with pipelined publisher
// confirms; consuming uses one channel per consumer with a prefetch window.
// Both reconnect after a broker restart and declare the topology again.
// See docs/adapters/rabbitmq.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/rabbitmq"
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/adapters/internal/bridge"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "rabbitmq"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens RabbitMQ transports.
type Driver struct{}

// Open validates cfg and connects (one connection for publishing, one for
// consuming, so that flow control on a fast publisher never delays acks).
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	t, err := Driver{}.openWatermill(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return bridge.Transport(t), nil
}

func (Driver) openWatermill(ctx context.Context, cfg sdk.Config) (*Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	return open(ctx, s)
}

func open(_ context.Context, s settings) (*Transport, error) {
	logger := slog.Default().With("driver", DriverName)
	pubConn, err := dial(s, "publish", logger)
	if err != nil {
		return nil, err
	}
	subConn, err := dial(s, "consume", logger)
	if err != nil {
		_ = pubConn.close()
		return nil, err
	}
	t := &Transport{s: s, publish: pubConn, consume: subConn, logger: logger,
		subs: map[*Subscriber]struct{}{}, declared: map[string]bool{}}
	t.pub = newPublisher(s, pubConn)
	return t, nil
}

// Transport is an open RabbitMQ transport.
type Transport struct {
	s       settings
	publish *connection
	consume *connection
	pub     *Publisher
	logger  *slog.Logger

	mu       sync.Mutex
	subs     map[*Subscriber]struct{}
	declared map[string]bool // queue and exchange names declared by this transport
}

// Capabilities declares what RabbitMQ guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:  true,
		Ordering:        sdk.OrderingNone, // competing consumers and requeue reorder a queue
		DurableGroups:   true,
		Persistent:      t.s.persistent && t.s.confirms,
		RequestReply:    true, // reply topics are exclusive auto-delete queues
		MaxPayloadBytes: t.s.maxPayload,
	}
}

// Publisher returns the pooled, confirming publisher.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber in the named group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("rabbitmq: consumer group is empty; name the group (usually the service name)")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == nil {
		return nil, fmt.Errorf("rabbitmq: transport %w", sdk.ErrClosed)
	}
	s := &Subscriber{t: t, group: group, closing: make(chan struct{})}
	t.subs[s] = struct{}{}
	return s, nil
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs != nil {
		delete(t.subs, s)
	}
}

func (t *Transport) noteDeclared(n names) {
	if n.exchange == "" {
		return // reply queues delete themselves
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.declared[n.queue] = true
	if t.s.deadLetter {
		t.declared[n.queue+".dlq"] = true
	}
}

// DeclaredQueues lists the queues this transport declared, for tooling and
// test cleanup.
func (t *Transport) DeclaredQueues() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.declared))
	for q := range t.declared {
		out = append(out, q)
	}
	sort.Strings(out)
	return out
}

// Close closes the publisher, every subscriber and both connections.
func (t *Transport) Close() error {
	t.mu.Lock()
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	for s := range subs {
		_ = s.Close()
	}
	return errors.Join(t.pub.Close(), t.consume.close(), t.publish.close())
}
