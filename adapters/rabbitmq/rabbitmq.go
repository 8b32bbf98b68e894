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

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "rabbitmq"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens RabbitMQ transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := parseSettings(cfg)
	return err
}

// Open validates cfg and connects (one connection for publishing, one for
// consuming, so that flow control on a fast publisher never delays acks),
// returning by ctx's deadline.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	return open(ctx, s)
}

func open(ctx context.Context, s settings) (*Transport, error) {
	logger := slog.Default().With("driver", DriverName)
	pubConn, err := dial(ctx, s, "publish", logger)
	if err != nil {
		return nil, err
	}
	subConn, err := dial(ctx, s, "consume", logger)
	if err != nil {
		_ = pubConn.close()
		return nil, err
	}
	return newTransport(s, pubConn, subConn, logger), nil
}

// New returns a transport on the caller's own connection, used for
// publishing and consuming alike. It is not redialled when it drops (the
// driver does not know how it was dialled): calls then fail until the
// caller makes a new transport; Close leaves it open. A bad option is a
// *sdk.ConfigError naming it.
func New(conn *amqp.Connection, o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	if err := o.check(sdk.Config{}); err != nil {
		return nil, err
	}
	s := settings{Options: o, host: conn.RemoteAddr().String(), vhost: conn.Config.Vhost}
	logger := slog.Default().With("driver", DriverName)
	c := borrow(s, conn, logger)
	return newTransport(s, c, c, logger), nil
}

func newTransport(s settings, pubConn, subConn *connection, logger *slog.Logger) *Transport {
	t := &Transport{s: s, publish: pubConn, consume: subConn, logger: logger,
		declared: map[string]bool{}}
	t.pub = newPublisher(s, pubConn)
	return t
}

// Transport is an open RabbitMQ transport.
type Transport struct {
	s       settings
	publish *connection
	consume *connection
	pub     *publisher
	logger  *slog.Logger

	mu       sync.Mutex
	subs     driver.Subscriptions[*subscription]
	declared map[string]bool // queue and exchange names declared by this transport
}

// Capabilities declares what RabbitMQ guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:  true,
		Ordering:        sdk.OrderingNone, // competing consumers and requeue reorder a queue
		DurableGroups:   true,
		Persistent:      !t.s.Transient && !t.s.NoConfirms,
		RequestReply:    true,           // reply topics are exclusive auto-delete queues
		RemovesGroups:   !t.s.NoDeclare, // declare: false never deletes the platform's queues
		MaxPayloadBytes: t.s.MaxPayloadBytes,
		// Headers travel in one frame (131072 bytes by default); half of
		// it leaves room for the encoding of many small entries, and the
		// publisher refuses a message whose headers still do not fit.
		MaxMetadataBytes: maxHeaderFrame / 2,
	}
}

// SendOptions: a publish pipelines its messages on one pooled channel,
// retried until publish_timeout when the caller's context has no deadline.
func (t *Transport) SendOptions() driver.SendOptions {
	return driver.SendOptions{Timeout: t.s.PublishTimeout}
}

// SendBatch publishes msgs with publisher confirms.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	return t.pub.send(ctx, topic, msgs)
}

// IsRetryable reports whether err means the channel or connection went
// away rather than the broker refusing the message.
func (t *Transport) IsRetryable(err error) bool { return retryable(err) }

// OpenSubscription declares the group's queue, so the group receives every
// message published from now on, and returns a consumer on it.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("rabbitmq: consumer group is empty; name the group (usually the service name)")
	}
	return t.subscribe(ctx, topic, t.s.names(topic, group))
}

// OpenReplySubscription consumes a reply topic through an exclusive,
// auto-deleted queue reached by the default exchange: it goes away with
// the subscription, and nothing durable is left behind.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	return t.subscribe(ctx, topic, t.s.names(topic, ""))
}

func (t *Transport) subscribe(ctx context.Context, topic string, n names) (driver.Subscription, error) {
	if err := t.s.checkNames(topic, n, true); err != nil {
		return nil, err
	}
	setupCtx, cancel := context.WithTimeout(ctx, t.s.PublishTimeout)
	defer cancel()
	if err := t.consume.use(setupCtx, func(ch *amqp.Channel) error { return t.s.declareGroup(ch, n) }); err != nil {
		return nil, err
	}
	s := &subscription{t: t, n: n}
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("rabbitmq: transport %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n.exchange != "" { // reply queues delete themselves
		t.declared[n.queue] = true
		if t.s.DeadLetter {
			t.declared[n.queue+".dlq"] = true
		}
	}
	return s, nil
}

// RemoveGroup deletes the group's queue, with the messages it holds, and
// its dead-letter queue and exchange when dead_letter is on. The topic's
// exchange stays: other groups use it.
func (t *Transport) RemoveGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return errors.New("rabbitmq: consumer group is empty; name the group to remove")
	}
	n := t.s.names(topic, group)
	if n.exchange == "" {
		return fmt.Errorf("rabbitmq: %s is a reply topic: its queue goes away with its client", sdk.QuoteName(topic))
	}
	if t.s.NoDeclare {
		return fmt.Errorf("rabbitmq: remove group %s: with declare: false the queues are the platform's, and msgkit never deletes one: %w", sdk.QuoteName(group), errors.ErrUnsupported)
	}
	ctx, cancel := context.WithTimeout(ctx, t.s.PublishTimeout)
	defer cancel()
	err := t.consume.use(ctx, func(ch *amqp.Channel) error {
		if _, err := ch.QueueDelete(n.queue, false, false, false); err != nil {
			return explainDeclareError(fmt.Sprintf("delete queue %q", n.queue), err)
		}
		if t.s.DeadLetter {
			if _, err := ch.QueueDelete(n.queue+".dlq", false, false, false); err != nil {
				return explainDeclareError(fmt.Sprintf("delete dead-letter queue %q", n.queue+".dlq"), err)
			}
			if err := ch.ExchangeDelete(n.queue+".dlx", false, false); err != nil {
				return explainDeclareError(fmt.Sprintf("delete dead-letter exchange %q", n.queue+".dlx"), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.declared, n.queue)
	delete(t.declared, n.queue+".dlq")
	t.mu.Unlock()
	return nil
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

// As reaches the transport itself (**Transport) and its publishing
// connection (**amqp.Connection, the one in use now: it is replaced after
// a reconnect).
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **Transport:
		*p = t
	case **amqp.Connection:
		t.publish.mu.Lock()
		*p = t.publish.conn
		t.publish.mu.Unlock()
	default:
		return false
	}
	return true
}

// Close closes the publisher, every subscription and both connections.
func (t *Transport) Close() error {
	if first, _ := t.subs.Close(); !first {
		return nil
	}
	return errors.Join(t.pub.Close(), t.consume.close(), t.publish.close())
}

var _ driver.Transport = (*Transport)(nil)
