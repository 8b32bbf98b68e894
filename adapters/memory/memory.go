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
	RemovesGroups:  true,
}

// Options bound a memory broker. Each consumer group holds at most
// MaxQueued waiting messages and MaxQueuedBytes of waiting payload; while a
// group of the topic is at either limit, Publish waits for its consumers
// to take some, until its context ends, and then fails saying which group
// is full. Messages in flight to handlers are not counted. A zero field
// takes its default.
type Options struct {
	// MaxQueued is the most messages a group holds waiting (default
	// 100000).
	MaxQueued int `option:"max_queued" default:"100000" min:"1" help:"most messages a consumer group holds waiting; Publish waits while a group is full"`
	// MaxQueuedBytes is the most payload bytes a group holds waiting
	// (default 256 MiB).
	MaxQueuedBytes int `option:"max_queued_bytes" default:"268435456" min:"1" help:"most payload bytes a consumer group holds waiting; Publish waits while a group is full"`
}

// Driver opens memory transports.
type Driver struct{}

var (
	sharedMu sync.Mutex
	shared   = map[string]*broker{}
)

// CheckConfig validates cfg's options and URL without opening anything.
func (Driver) CheckConfig(cfg sdk.Config) error {
	var o Options
	if err := cfg.OptionsSection().Decode(&o); err != nil {
		return err
	}
	_, err := brokerName(cfg)
	return err
}

// Open returns a transport on a private broker, or on the process-wide
// broker named by a memory://NAME URL, bounded by the Options in cfg (the
// same for every Open of one named broker).
func (Driver) Open(_ context.Context, cfg sdk.Config) (driver.Transport, error) {
	var o Options
	if err := cfg.OptionsSection().Decode(&o); err != nil {
		return nil, err
	}
	name, err := brokerName(cfg)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return &Transport{b: newBroker(o), owned: true}, nil
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	b, ok := shared[name]
	if !ok {
		b = newBroker(o)
		shared[name] = b
	} else if b.limits != o {
		return nil, cfg.Invalid("options", nil, "broker memory://%s is already open in this process with max_queued %d and max_queued_bytes %d; open it with the same limits",
			name, b.limits.MaxQueued, b.limits.MaxQueuedBytes)
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
func New() *Transport { return &Transport{b: newBroker(defaultOptions), owned: true} }

var defaultOptions = func() Options {
	var o Options
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		panic(err) // the tags above are wrong
	}
	return o
}()

// NewWithOptions is New with limits other than the defaults; a bad option
// is a *sdk.ConfigError naming it.
func NewWithOptions(o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	return &Transport{b: newBroker(o), owned: true}, nil
}

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
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if t.subs.Closed() {
		return fmt.Errorf("memory: publish to %s: transport %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	envs := make([]envelope, len(msgs))
	for i, m := range msgs {
		envs[i] = envelope{id: m.ID, payload: bytes.Clone(m.Payload), metadata: m.Metadata, key: m.OrderingKey}
	}
	if err := t.b.publish(ctx, topic, envs); err != nil {
		if errors.Is(err, errBrokerClosed) {
			return fmt.Errorf("memory: publish to %s: broker %w", sdk.QuoteName(topic), sdk.ErrClosed)
		}
		return fmt.Errorf("memory: publish to %s: %w", sdk.QuoteName(topic), err)
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
		return nil, fmt.Errorf("memory: subscribe to %s: transport %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	g, ok := t.b.group(topic, group)
	if !ok {
		return nil, fmt.Errorf("memory: subscribe to %s: broker %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	s := newSubscription(t.b, g, nil)
	s.onClose = func() {
		t.subs.Remove(s)
		if onClose != nil {
			onClose()
		}
	}
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("memory: subscribe to %s: transport %w", sdk.QuoteName(topic), err)
	}
	return s, nil
}

// RemoveGroup drops the group and the messages it holds.
func (t *Transport) RemoveGroup(_ context.Context, topic, group string) error {
	if group == "" {
		return errNoGroup
	}
	t.b.removeGroup(topic, group)
	return nil
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
