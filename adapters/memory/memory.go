// Package memory is the in-process broker: the default driver, for
// development, tests and single-process services. It has real consumer
// group semantics (each group gets every message once, members compete),
// redelivers nacked messages in their original order, and keeps per-key
// order across competing consumers. Nothing survives the process.
//
// Import it for its side effect of registering the "memory" driver:
//
//	import _ "github.com/msgkit/msgkit/adapters/memory"
//
// URL forms:
//
//	""  or "memory://"   a private broker for this Client alone
//	"memory://NAME"      a broker shared by every Client in the process that names it
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the memory driver registers under.
const DriverName = "memory"

func init() { sdk.Register(DriverName, Driver{}) }

// Capabilities is what the memory driver declares; the conformance suite
// holds it to every claim.
var Capabilities = sdk.Capabilities{
	ConsumerGroups: true,
	Ordering:       sdk.OrderingPerKey,
	DurableGroups:  true,
	RequestReply:   true,
}

// Driver opens memory transports.
type Driver struct{}

var (
	sharedMu sync.Mutex
	shared   = map[string]*broker{}
)

// Open returns a transport on a private broker, or on the process-wide
// broker named by a memory://NAME URL. The memory driver has no options.
func (Driver) Open(_ context.Context, cfg sdk.Config) (driver.Transport, error) {
	if err := cfg.CheckOptions(); err != nil {
		return nil, err
	}
	name, err := brokerName(cfg)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return New(), nil
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	b, ok := shared[name]
	if !ok {
		b = newBroker()
		shared[name] = b
	}
	return &Transport{b: b}, nil
}

func brokerName(cfg sdk.Config) (string, error) {
	if cfg.URL == "" {
		return "", nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "memory" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return "", cfg.Invalid("url", nil, "the memory driver takes an empty url, memory:// or memory://NAME (a broker shared in this process), got %q", sdk.RedactURL(cfg.URL))
	}
	return u.Host, nil
}

// New returns a transport on a new private broker, for tests and programs
// that build transports in code rather than from config.
func New() *Transport { return &Transport{b: newBroker(), owned: true} }

// Transport is an open memory transport.
type Transport struct {
	b     *broker
	owned bool // a private broker closes with its transport
	subs  driver.Subscriptions[*subscription]
}

// Capabilities returns the memory driver's capabilities.
func (t *Transport) Capabilities() sdk.Capabilities { return Capabilities }

// SendOptions: a publish is one call, however many messages it holds.
func (t *Transport) SendOptions() driver.SendOptions { return driver.SendOptions{} }

// SendBatch appends msgs to every consumer group of topic. It keeps the
// messages' metadata maps and copies their payloads.
func (t *Transport) SendBatch(_ context.Context, topic string, msgs []*driver.Message) error {
	if t.subs.Closed() {
		return fmt.Errorf("memory: publish to %q: transport %w", topic, sdk.ErrClosed)
	}
	envs := make([]envelope, len(msgs))
	for i, m := range msgs {
		envs[i] = envelope{id: m.ID, payload: bytes.Clone(m.Payload), metadata: m.Metadata, key: m.OrderingKey}
	}
	if !t.b.publish(topic, envs) {
		return fmt.Errorf("memory: publish to %q: broker %w", topic, sdk.ErrClosed)
	}
	return nil
}

// OpenSubscription joins group on topic; the group exists, and receives
// every message published from now on, when it returns.
func (t *Transport) OpenSubscription(_ context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errNoGroup
	}
	return t.open(topic, group, nil)
}

// OpenReplySubscription consumes a reply topic, which is removed from the
// broker when the subscription closes.
func (t *Transport) OpenReplySubscription(_ context.Context, topic string) (driver.Subscription, error) {
	return t.open(topic, topic, func() { t.b.removeTopic(topic) })
}

// open joins group on topic; onClose, when not nil, runs when the
// subscription closes.
func (t *Transport) open(topic, group string, onClose func()) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("memory: subscribe to %q: transport %w", topic, sdk.ErrClosed)
	}
	g, ok := t.b.group(topic, group)
	if !ok {
		return nil, fmt.Errorf("memory: subscribe to %q: broker %w", topic, sdk.ErrClosed)
	}
	s := newSubscription(t.b, g, nil)
	s.onClose = func() {
		t.subs.Remove(s)
		if onClose != nil {
			onClose()
		}
	}
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("memory: subscribe to %q: transport %w", topic, err)
	}
	return s, nil
}

var errNoGroup = errors.New("memory: consumer group is empty; name the group (usually the service name)")

// IsRetryable: the memory broker fails only once closed, for good.
func (t *Transport) IsRetryable(error) bool { return false }

// As reaches nothing: the memory broker has no native client.
func (t *Transport) As(any) bool { return false }

// Close closes a private broker, which ends every subscription on it. A
// shared broker lives as long as the process.
func (t *Transport) Close() error {
	if first, _ := t.subs.Close(); first && t.owned {
		t.b.close()
	}
	return nil
}

var _ driver.Transport = (*Transport)(nil)
