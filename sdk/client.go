package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Client is the portable messaging API: publish, subscribe and close, over
// whichever driver the config selects. It is safe for concurrent use.
type Client struct {
	transport Transport
	caps      Capabilities
	driver    string
	logger    *slog.Logger
	shutdown  time.Duration
	now       func() time.Time

	mu     sync.Mutex
	closed bool
	subs   map[*Subscription]struct{}

	replies replies
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets where the client logs handler failures and shutdown
// problems. The default is slog.Default(); pass a logger with a discarding
// handler to silence it.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.logger = l
		}
	}
}

// Open connects to the broker that cfg selects. The driver must have been
// registered, usually by a blank import of its adapter package.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	name := cfg.DriverName()
	d, err := lookupDriver(name)
	if err != nil {
		if ce, ok := err.(*ConfigError); ok {
			ce.Source = cfg.Source("driver")
		}
		return nil, err
	}
	t, err := d.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("messaging: open driver %q: %w", name, err)
	}
	c := NewClient(t, opts...)
	c.driver = name
	if cfg.ShutdownTimeout > 0 {
		c.shutdown = cfg.ShutdownTimeout
	}
	return c, nil
}

// OpenFile loads a YAML config file (see LoadConfig; environment variables
// override it) and opens a Client from it. An empty path uses the
// environment alone.
func OpenFile(ctx context.Context, path string, opts ...Option) (*Client, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg, opts...)
}

// NewClient wraps a transport that is already open. Close closes it.
func NewClient(t Transport, opts ...Option) *Client {
	c := &Client{
		transport: t,
		caps:      t.Capabilities(),
		driver:    "custom",
		logger:    slog.Default(),
		shutdown:  DefaultShutdownTimeout,
		now:       time.Now,
		subs:      map[*Subscription]struct{}{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Capabilities reports what the underlying transport guarantees.
func (c *Client) Capabilities() Capabilities { return c.caps }

// Publisher returns the underlying Watermill publisher: the escape hatch for
// code written against Watermill. Messages published through it skip the
// Client's validation.
func (c *Client) Publisher() message.Publisher { return c.transport.Publisher() }

// Subscriber returns a new underlying Watermill subscriber in the given
// consumer group: the escape hatch for Watermill's router and middleware.
// The caller closes it.
func (c *Client) Subscriber(group string) (message.Subscriber, error) {
	return c.transport.Subscriber(group)
}

// Publish sends msgs to topic. It checks every message against the driver's
// declared limits before sending any, so a message that cannot be carried
// fails with a clear error and nothing partial reaches the broker. Messages
// without an ID get one, and without a Time get the current time.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*Message) error {
	if c.isClosed() {
		return fmt.Errorf("messaging: publish to %q: %w", topic, ErrClosed)
	}
	if topic == "" {
		return errors.New("messaging: publish: topic is empty; name the topic to publish to")
	}
	if len(msgs) == 0 {
		return nil
	}
	now := c.now()
	parent := Consumed(ctx)
	if mp, ok := c.transport.Publisher().(MessagePublisher); ok {
		return c.publishMessages(ctx, mp, topic, msgs, now, parent)
	}
	wms := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("messaging: publish to %q: message %d is nil", topic, i)
		}
		m.inheritFrom(parent)
		wm := m.ToWatermill(now)
		if err := c.checkLimits(wm); err != nil {
			return fmt.Errorf("messaging: publish to %q: message %d (id %s): %w", topic, i, wm.UUID, err)
		}
		wm.SetContext(ctx)
		wms[i] = wm
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("messaging: publish to %q: %w", topic, err)
	}
	if err := c.transport.Publisher().Publish(topic, wms...); err != nil {
		return fmt.Errorf("messaging: publish %d message(s) to %q via %s: %w", len(wms), topic, c.driver, err)
	}
	// Give callers the IDs that were generated, so they can log or correlate.
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = wms[i].UUID
		}
	}
	return nil
}

// publishMessages is Publish on the MessagePublisher fast path.
func (c *Client) publishMessages(ctx context.Context, mp MessagePublisher, topic string, msgs []*Message, now time.Time, parent *Message) error {
	outs := make([]Outgoing, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("messaging: publish to %q: message %d is nil", topic, i)
		}
		m.inheritFrom(parent)
		o := NewOutgoing(m, now)
		if err := c.checkOutgoing(o); err != nil {
			return fmt.Errorf("messaging: publish to %q: message %d (id %s): %w", topic, i, o.ID(), err)
		}
		outs[i] = o
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("messaging: publish to %q: %w", topic, err)
	}
	if err := mp.PublishMessages(ctx, topic, outs); err != nil {
		return fmt.Errorf("messaging: publish %d message(s) to %q via %s: %w", len(outs), topic, c.driver, err)
	}
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = outs[i].ID()
		}
	}
	return nil
}

func (c *Client) checkLimits(wm *message.Message) error {
	return c.checkLimitsOf(len(wm.Payload), len(wm.Metadata))
}

// checkOutgoing is checkLimits for the MessagePublisher path; it counts the
// metadata only when there is a limit to check it against.
func (c *Client) checkOutgoing(o Outgoing) error {
	metadata := 0
	if c.caps.MaxMetadataEntries > 0 {
		metadata = o.MetadataLen()
	}
	return c.checkLimitsOf(len(o.Payload()), metadata)
}

func (c *Client) checkLimitsOf(payload, metadata int) error {
	if max := c.caps.MaxPayloadBytes; max > 0 && payload > max {
		return fmt.Errorf("%w: %d bytes, driver %s carries at most %d", ErrPayloadTooLarge, payload, c.driver, max)
	}
	if max := c.caps.MaxMetadataEntries; max > 0 && metadata > max {
		return fmt.Errorf("%w: %d entries (standard attributes included), driver %s carries at most %d",
			ErrTooManyMetadataEntries, metadata, c.driver, max)
	}
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close stops every subscription, waits for running handlers to finish
// (their messages are acked or nacked as usual), then closes the publisher
// and the transport. It waits at most until ctx is done, or the config's
// shutdown_timeout when ctx has no deadline; handlers still running then have
// their context cancelled and their messages are left unacknowledged, for the
// broker to redeliver. Close is idempotent.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.shutdown)
		defer cancel()
	}
	errs := make([]error, len(subs)+2)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close(ctx)
		}()
	}
	wg.Wait()
	if err := c.replies.close(); err != nil {
		errs = append(errs, fmt.Errorf("messaging: close the reply subscription: %w", err))
	}
	if err := c.transport.Publisher().Close(); err != nil {
		errs[len(subs)] = fmt.Errorf("messaging: close publisher: %w", err)
	}
	if err := c.transport.Close(); err != nil {
		errs[len(subs)+1] = fmt.Errorf("messaging: close %s transport: %w", c.driver, err)
	}
	return errors.Join(errs...)
}

func (c *Client) forget(s *Subscription) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
}
