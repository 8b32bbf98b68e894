package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/internal/slab"
	"github.com/msgkit/msgkit/sdk/driver"
	"github.com/msgkit/msgkit/sdk/internal/engine"
)

// Client is the portable messaging API: publish, subscribe and close, over
// whichever driver the config selects. It is safe for concurrent use.
type Client struct {
	transport driver.Transport
	caps      Capabilities
	sender    *engine.Sender
	driver    string
	logger    *slog.Logger
	shutdown  time.Duration
	now       func() time.Time
	// nackBackoff is every subscription's unless WithNackBackoff says
	// otherwise.
	nackBackoff engine.Backoff
	codec       Codec // Encode, Decode and the typed helpers
	require     []Requirement
	cfg         Config      // what Open was given
	warnedOrder atomic.Bool // publishing an ordering key the driver does not keep was logged

	mu     sync.Mutex
	closed atomic.Bool // set under mu; read without it on every publish
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

// Open connects to the broker that cfg selects, returning by ctx's
// deadline. The driver must have been registered, usually by a blank import
// of its adapter package.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Client, error) {
	name := cfg.DriverName()
	d, err := configuredDriver(cfg)
	if err != nil {
		return nil, err
	}
	unread, err := cfg.checkSections()
	if err != nil {
		return nil, err
	}
	if err := cfg.checkNackBackoff(); err != nil {
		return nil, err
	}
	t, err := d.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("messaging: open driver %q: %w", name, err)
	}
	c := NewClient(t, opts...)
	c.driver, c.cfg = name, cfg
	for _, s := range unread {
		c.logger.Warn("messaging: the config has a "+s+": section but nothing in this program reads it; import github.com/msgkit/msgkit/middleware and build the stack with middleware.FromConfig(client.Config(), deps)",
			"section", s)
	}
	if err := checkRequirements(name, c.caps, append(c.require, cfg.Require...)); err != nil {
		_ = t.Close()
		if len(cfg.Require) > 0 {
			return nil, &ConfigError{Key: "require", Source: cfg.Source("require"), Reason: err.Error() + "; choose such a driver, or configure this one to provide it"}
		}
		return nil, err
	}
	if cfg.ShutdownTimeout > 0 {
		c.shutdown = cfg.ShutdownTimeout
	}
	switch {
	case cfg.NackBackoff < 0:
		c.nackBackoff = engine.Backoff{}
	case cfg.NackBackoff > 0:
		c.nackBackoff.Initial = cfg.NackBackoff
	}
	if cfg.NackBackoffMax > 0 {
		c.nackBackoff.Max = cfg.NackBackoffMax
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

// NewClient wraps a transport that is already open: one from an adapter's
// typed constructor, or a Watermill pub/sub wrapped by WatermillTransport.
// Close closes it.
func NewClient(t driver.Transport, opts ...Option) *Client {
	c := &Client{
		transport:   t,
		caps:        t.Capabilities(),
		sender:      engine.NewSender(t),
		driver:      "custom",
		logger:      slog.Default(),
		shutdown:    DefaultShutdownTimeout,
		nackBackoff: engine.Backoff{Initial: DefaultNackBackoff, Max: DefaultNackBackoffMax},
		codec:       JSON,
		now:         time.Now,
		subs:        map[*Subscription]struct{}{},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Config returns the configuration the client was opened with (by Open or
// OpenFile; the zero Config for NewClient), for what reads the same file:
// middleware.FromConfig, the service's app: section (Config.App). Its
// String form redacts secrets.
func (c *Client) Config() Config { return c.cfg }

// Capabilities reports what the underlying transport guarantees.
func (c *Client) Capabilities() Capabilities { return c.caps }

// As sets target to the driver's native client (an *amqp.Connection, a
// redis.UniversalClient, a *kgo.Client...) when target points to its type,
// and reports whether it did: the escape hatch for what the portable API
// does not cover.
func (c *Client) As(target any) bool { return c.transport.As(target) }

// Publisher returns a Watermill publisher on the client's transport, for
// code written against Watermill. It enforces the driver's limits like
// Publish. Closing it does not close the client.
func (c *Client) Publisher() message.Publisher {
	return &watermillPublisher{sender: c.sender, limits: c.limits()}
}

// Subscriber returns a new Watermill subscriber in the given consumer
// group, for Watermill's router and middleware. The caller closes it.
func (c *Client) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("messaging: subscriber: group is empty; name the consumer group (usually the service name)")
	}
	s := NewWatermillSubscriber(c.transport, group, c.logger).(*watermillSubscriber)
	s.backoff = c.nackBackoff
	return s, nil
}

// Publish sends msgs to topic. It checks every message against the driver's
// declared limits before sending any, so a message that cannot be carried
// fails with a clear error and nothing partial reaches the broker. Messages
// without an ID get one, and without a Time get the current time. It
// returns by ctx's deadline, or the driver's publish timeout when ctx has
// none, and when ctx is cancelled. A Publish that failed because ctx ended
// may still have its messages reach the broker afterwards (a call the
// broker had not answered goes on in the background), and a driver may
// read a payload until then: do not change a payload once it is passed to
// Publish; publish a copy instead.
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*Message) error {
	if c.isClosed() {
		return fmt.Errorf("messaging: publish to %s: %w", QuoteName(topic), ErrClosed)
	}
	if topic == "" {
		return InvalidName(errors.New("messaging: publish: topic is empty; name the topic to publish to"))
	}
	if len(msgs) == 0 {
		return nil
	}
	now := c.now()
	var call publishCall
	parent := Consumed(ctx)
	conversation := ""
	if parent == nil {
		conversation, _ = ctx.Value(correlationKey).(string)
	}
	l := c.limits()
	dms := slab.New[driver.Message](len(msgs))
	var before Outgoing      // the message before, as it goes out
	var prev *driver.Message // and as the driver gets it
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("messaging: publish to %s: message %d is nil", QuoteName(topic), i)
		}
		if err := CheckTime(m.Time); err != nil {
			return fmt.Errorf("messaging: publish to %s: message %d (id %s): %w", QuoteName(topic), i, QuoteName(m.ID), err)
		}
		m.inheritFrom(parent)
		if conversation != "" && m.CorrelationID == "" {
			m.CorrelationID = conversation
		}
		if m.OrderingKey != "" && c.caps.Ordering != OrderingPerKey && !c.warnedOrder.Swap(true) {
			c.logger.Warn("messaging: publishing with an ordering key to a driver that does not keep per-key order; the key is carried but messages may be handled out of order (state sdk.RequireOrderingPerKey to make Open refuse such a driver)",
				"driver", c.driver, "topic", topic)
		}
		dm := dms[i]
		o := call.outgoing(m, now)
		shared := o.fill(dm, before, prev)
		before, prev = o, dm
		err := l.checkPayload(dm)
		if err == nil && !shared { // a shared map was checked with the message before
			err = l.checkMetadata(dm)
		}
		if err != nil {
			return fmt.Errorf("messaging: publish to %s: message %d (id %s): %w", QuoteName(topic), i, QuoteName(dm.ID), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("messaging: publish to %s: %w", QuoteName(topic), err)
	}
	if err := c.sender.Send(ctx, topic, dms); err != nil {
		if errors.Is(err, engine.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("messaging: publish %d message(s) to %s via %s: %w", len(dms), QuoteName(topic), c.driver, err)
	}
	// Give callers the IDs that were generated, so they can log or correlate.
	for i, m := range msgs {
		if m.ID == "" {
			m.ID = dms[i].ID
		}
	}
	return nil
}

func (c *Client) limits() limits { return limits{caps: c.caps, driver: c.driver} }

// limits checks a message against a driver's declared limits.
type limits struct {
	caps   Capabilities
	driver string
}

func (l limits) check(m *driver.Message) error {
	if err := l.checkPayload(m); err != nil {
		return err
	}
	return l.checkMetadata(m)
}

func (l limits) name() string {
	if l.driver == "" {
		return "of this transport"
	}
	return l.driver
}

func (l limits) checkPayload(m *driver.Message) error {
	if max := l.caps.MaxPayloadBytes; max > 0 && len(m.Payload) > max {
		return fmt.Errorf("%w: %d bytes, driver %s carries at most %d", ErrPayloadTooLarge, len(m.Payload), l.name(), max)
	}
	return nil
}

func (l limits) checkMetadata(m *driver.Message) error {
	if max := l.caps.MaxMetadataEntries; max > 0 && len(m.Metadata) > max {
		return fmt.Errorf("%w: %d entries (standard attributes included), driver %s carries at most %d",
			ErrTooManyMetadataEntries, len(m.Metadata), l.name(), max)
	}
	n := 0
	for k, v := range m.Metadata {
		if err := CheckMetadata(k, v); err != nil {
			return err
		}
		n += len(k) + len(v)
	}
	if max := l.caps.MaxMetadataBytes; max > 0 && n > max {
		return fmt.Errorf("%w: %d bytes of keys and values, driver %s carries at most %d", ErrMetadataTooLarge, n, l.name(), max)
	}
	return nil
}

func (c *Client) isClosed() bool { return c.closed.Load() }

// Close stops every subscription, waits for running handlers to finish
// (their messages are acked or nacked as usual), then closes the transport.
// It waits at most until ctx is done, or the config's shutdown_timeout when
// ctx has no deadline; handlers still running then have their context
// cancelled and their messages are left unacknowledged, for the broker to
// redeliver, and Close returns an error naming what did not stop. Close is
// idempotent.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		return nil
	}
	c.closed.Store(true)
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
	errs := make([]error, len(subs), len(subs)+3)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Close(ctx)
		}()
	}
	wg.Wait()
	if err := c.replies.close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("messaging: close the reply subscription: %w", err))
	}
	errs = append(errs, bounded(ctx, "the publisher's sends in progress", func() error { c.sender.Close(); return nil }))
	if err := bounded(ctx, "the "+c.driver+" transport's Close", c.transport.Close); err != nil {
		errs = append(errs, fmt.Errorf("messaging: close %s transport: %w", c.driver, err))
	}
	return errors.Join(errs...)
}

// bounded runs f and waits for it until ctx ends (and engine.LateGrace
// more, for a step that was about to return); then it reports what did not
// return and leaves f running.
func bounded(ctx context.Context, what string, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	late := time.NewTimer(engine.LateGrace)
	defer late.Stop()
	select {
	case err := <-done:
		return err
	case <-late.C:
		return fmt.Errorf("messaging: %s did not return before the shutdown deadline: %w", what, ctx.Err())
	}
}

func (c *Client) forget(s *Subscription) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
}
