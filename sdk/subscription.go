package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
	"github.com/msgkit/msgkit/sdk/internal/engine"
)

// Handler processes one message. Returning nil acknowledges it; returning an
// error (or panicking) leaves it for redelivery. ctx is cancelled when the
// Client's shutdown deadline passes.
type Handler func(ctx context.Context, msg *Message) error

// SubscribeOption configures one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	concurrency int
	nackBackoff *engine.Backoff
	middleware  []func(Handler) Handler
	start       string   // GroupStartOldest, GroupStartLatest or "" (the driver's configured start)
	invalid     []string // what options given out of range said, for the error
}

// check returns an error naming every option given out of range.
func (o subscribeOptions) check(topic, group string) error {
	if len(o.invalid) == 0 {
		return nil
	}
	return fmt.Errorf("messaging: subscribe to %s in group %s: %s", QuoteName(topic), QuoteName(group), strings.Join(o.invalid, "; "))
}

// StartAt sets where the group starts if Subscribe, Respond or EnsureGroup
// creates it: GroupStartOldest (every message the broker still keeps) or
// GroupStartLatest (only what is published from now on), overriding the
// config's new_group_start for this group. A group that exists keeps its
// position. Drivers that cannot choose (Capabilities.ChoosesGroupStart
// false: brokers that keep no history) refuse it with an error.
func StartAt(start string) SubscribeOption {
	return func(o *subscribeOptions) { o.start = start }
}

// groupContext returns ctx carrying o's group start for the driver, or an
// error when the driver cannot honour it.
func (c *Client) groupContext(ctx context.Context, o subscribeOptions, topic, group string) (context.Context, error) {
	switch o.start {
	case "":
		return ctx, nil
	case GroupStartOldest, GroupStartLatest:
	default:
		return nil, fmt.Errorf("messaging: group %s on %s: StartAt(%q): want %q or %q", QuoteName(group), QuoteName(topic), o.start, GroupStartOldest, GroupStartLatest)
	}
	if !c.caps.ChoosesGroupStart {
		return nil, fmt.Errorf("messaging: group %s on %s: driver %s cannot choose where a new group starts (it keeps no history, or creates groups at a fixed place); create the group before producers start (EnsureGroup) instead of StartAt", QuoteName(group), QuoteName(topic), c.driver)
	}
	return driver.WithGroupStart(ctx, o.start == GroupStartOldest), nil
}

// WithMiddleware wraps this subscription's handler, or a responder, in
// mws, the first outermost: a package middleware value
// (middleware.Timeout(...)), or a stack's Handler method
// (stack.Handler, from middleware.FromConfig). For Respond the middleware
// wraps the responder's call, so timeout, breaker, bulkhead and
// observability apply to responders as to handlers; the reply is sent
// after it.
func WithMiddleware(mws ...func(Handler) Handler) SubscribeOption {
	return func(o *subscribeOptions) { o.middleware = append(o.middleware, mws...) }
}

func wrap(h Handler, mws []func(Handler) Handler) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// WithNackBackoff sets how long a message whose handler failed waits before
// it is delivered again for this subscription: initial after the first
// failure, twice as long after each next one, up to max. initial 0 turns
// the backoff off: the message comes back at once. The default is the
// config's nack_backoff (DefaultNackBackoff). The wait holds back only that
// message and the later ones of its ordering key; where the broker can
// delay a redelivery itself (SQS, NATS JetStream) it does, and elsewhere
// the subscription holds the message until its time. max 0 sets no
// limit; a negative duration, or a max below initial, makes Subscribe fail.
func WithNackBackoff(initial, max time.Duration) SubscribeOption {
	return func(o *subscribeOptions) {
		switch {
		case initial < 0 || max < 0:
			o.invalid = append(o.invalid, fmt.Sprintf("WithNackBackoff(%v, %v): a wait cannot be negative; initial 0 turns the backoff off", initial, max))
		case max > 0 && initial > max:
			o.invalid = append(o.invalid, fmt.Sprintf("WithNackBackoff(%v, %v): max is below initial; max is the longest the wait grows to (0: no limit)", initial, max))
		default:
			o.nackBackoff = &engine.Backoff{Initial: initial, Max: max}
		}
	}
}

// WithConcurrency runs n handlers at once for this subscription (default 1).
// Each is a competing consumer of the group, so with n > 1 only a driver
// with Ordering == OrderingPerKey keeps per-key order. n below 1 makes
// Subscribe fail.
func WithConcurrency(n int) SubscribeOption {
	return func(o *subscribeOptions) {
		if n < 1 {
			o.invalid = append(o.invalid, fmt.Sprintf("WithConcurrency(%d): want at least 1 handler", n))
			return
		}
		o.concurrency = n
	}
}

// PanicError is the error a handler's panic is turned into; the message is
// then treated like any failed message.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the handler's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Subscription is a running consumer of one topic in one group.
type Subscription struct {
	client  *Client
	topic   string
	group   string
	handler Handler
	recv    *engine.Receiver

	stopping   chan struct{} // closed: take no more messages
	handlerCtx context.Context
	cancelWork context.CancelFunc // cancels running handlers at the deadline
	closeOnce  sync.Once
	closeErr   error
	expired    *atomic.Int64 // Respond: requests dropped because their caller gave up
}

// ExpiredRequests is how many requests a Respond subscription dropped
// without calling its responder because their caller's deadline had
// passed. It is 0 for other subscriptions.
func (s *Subscription) ExpiredRequests() int64 {
	if s.expired == nil {
		return 0
	}
	return s.expired.Load()
}

// Subscribe starts consuming topic as a member of group, calling h for each
// message. Members of one group share the messages; each group receives all
// of them. Consumption has started (the group exists on the broker) when
// Subscribe returns; ctx bounds that setup, not the subscription, which
// runs until Close. Subscribe never holds up Publish.
func (c *Client) Subscribe(ctx context.Context, topic, group string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if topic == "" {
		return nil, InvalidName(errors.New("messaging: subscribe: topic is empty; name the topic to consume"))
	}
	if group == "" {
		return nil, fmt.Errorf("messaging: subscribe to %s: group is empty; name the consumer group (usually the service name)", QuoteName(topic))
	}
	if h == nil {
		return nil, fmt.Errorf("messaging: subscribe to %s: handler is nil", QuoteName(topic))
	}
	o := subscribeOptions{concurrency: 1, nackBackoff: &c.nackBackoff}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(topic, group); err != nil {
		return nil, err
	}
	h = wrap(h, o.middleware)
	if c.isClosed() {
		return nil, fmt.Errorf("messaging: subscribe to %s: %w", QuoteName(topic), ErrClosed)
	}
	openCtx, err := c.groupContext(ctx, o, topic, group)
	if err != nil {
		return nil, err
	}
	ds, err := c.transport.OpenSubscription(openCtx, topic, group)
	if err != nil {
		return nil, fmt.Errorf("messaging: subscribe to %s in group %s: %w", QuoteName(topic), QuoteName(group), err)
	}
	handlerCtx, cancelWork := context.WithCancel(context.Background())
	s := &Subscription{
		client: c, topic: topic, group: group, handler: h,
		stopping: make(chan struct{}), handlerCtx: handlerCtx, cancelWork: cancelWork,
	}
	s.recv = engine.Start(ds, s.handle, engine.Config{
		Concurrency: o.concurrency, Logger: c.logger, Where: fmt.Sprintf("%s in group %s", QuoteName(topic), QuoteName(group)), OnDeadline: cancelWork,
		NackBackoff: *o.nackBackoff,
	})
	c.mu.Lock()
	if c.closed.Load() {
		c.mu.Unlock()
		_ = s.Close(ctx)
		return nil, fmt.Errorf("messaging: subscribe to %s: %w", QuoteName(topic), ErrClosed)
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	return s, nil
}

// EnsureGroup creates group on topic without consuming: from its return on,
// the group keeps every message published to topic (where the driver
// declares DurableGroups) until a member subscribes. Call it before the
// first publish when producers may start before consumers, so that nothing
// published in between is lost. It is idempotent; ctx bounds it. Of opts
// only StartAt applies.
func (c *Client) EnsureGroup(ctx context.Context, topic, group string, opts ...SubscribeOption) error {
	if topic == "" || group == "" {
		return fmt.Errorf("messaging: ensure group %s on %s: topic and group must both be named", QuoteName(group), QuoteName(topic))
	}
	if c.isClosed() {
		return fmt.Errorf("messaging: ensure group %s on %s: %w", QuoteName(group), QuoteName(topic), ErrClosed)
	}
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(topic, group); err != nil {
		return err
	}
	ctx, err := c.groupContext(ctx, o, topic, group)
	if err != nil {
		return err
	}
	return ensureGroup(ctx, c.transport, topic, group)
}

// RemoveGroup deletes a consumer group of topic and what the broker keeps
// for it (a queue, a stream's group, committed offsets): the opposite of
// EnsureGroup, for a temporary group such as a tail's. Stop the group's
// subscriptions first. Removing a group that does not exist succeeds. A
// driver whose Capabilities lack RemovesGroups refuses with an error
// wrapping errors.ErrUnsupported. Without a deadline on ctx the call is
// bounded by DefaultPublishTimeout.
func (c *Client) RemoveGroup(ctx context.Context, topic, group string) error {
	if topic == "" || group == "" {
		return fmt.Errorf("messaging: remove group %s of %s: topic and group must both be named", QuoteName(group), QuoteName(topic))
	}
	if c.isClosed() {
		return fmt.Errorf("messaging: remove group %s of %s: %w", QuoteName(group), QuoteName(topic), ErrClosed)
	}
	if !c.transport.Capabilities().RemovesGroups {
		return fmt.Errorf("messaging: remove group %q of %q: the %s driver cannot remove consumer groups (Capabilities.RemovesGroups is false): %w",
			group, topic, c.cfg.DriverName(), errors.ErrUnsupported)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	if err := c.transport.RemoveGroup(ctx, topic, group); err != nil {
		return fmt.Errorf("messaging: remove group %s of %s: %w", QuoteName(group), QuoteName(topic), err)
	}
	return nil
}

// ensureGroup opens a subscription, which by the driver contract leaves
// the group in place, and closes it before it receives anything.
func ensureGroup(ctx context.Context, t driver.Transport, topic, group string) error {
	ds, err := t.OpenSubscription(ctx, topic, group)
	if err != nil {
		return fmt.Errorf("messaging: ensure group %s on %s: %w", QuoteName(group), QuoteName(topic), err)
	}
	if err := ds.Close(); err != nil {
		return fmt.Errorf("messaging: ensure group %s on %s: close: %w", QuoteName(group), QuoteName(topic), err)
	}
	return nil
}

// handle runs the handler on a received message and reports whether to
// ack it.
func (s *Subscription) handle(dm *driver.Message) bool {
	// The message and its handler context in one allocation.
	r := new(struct {
		msg Message
		ctx handlerContext
	})
	fillReceived(&r.msg, receivedID(dm), dm.Payload, dm.Metadata)
	r.msg.topic = dm.Topic
	return s.process(&r.msg, &r.ctx)
}

// process runs the handler on msg, with ctx as the memory of its
// context, and reports whether to ack it.
func (s *Subscription) process(msg *Message, ctx *handlerContext) bool {
	// The handler context is the subscription's: it is cancelled only at the
	// shutdown deadline, so a per-message context would cost an allocation
	// per message and add nothing.
	if msg.topic == "" {
		msg.topic = s.topic
	}
	msg.subscribed, msg.group = s.topic, s.group
	*ctx = handlerContext{Context: s.handlerCtx, msg: msg, stopping: s.stopping}
	msg.ctx = ctx
	if err := callHandler(ctx, s.handler, msg); err != nil {
		s.client.logger.Warn("message handler failed; the message will be redelivered",
			"topic", s.topic, "group", s.group, "message_id", msg.ID, "error", err)
		return false
	}
	return true
}

func callHandler(ctx context.Context, h Handler, msg *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return h(ctx, msg)
}

// Topic returns the subscribed topic.
func (s *Subscription) Topic() string { return s.topic }

// Group returns the consumer group.
func (s *Subscription) Group() string { return s.group }

// Close stops taking messages, waits until ctx is done for running handlers
// to finish, then closes the underlying subscription. Handlers still
// running at the deadline get their context cancelled; their messages are
// left unacknowledged for redelivery and Close reports it.
func (s *Subscription) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		// The receiver first, so that a handler returning on Stopping
		// hands its message back at once, not after its nack backoff.
		s.recv.MarkStopping()
		close(s.stopping)
		s.closeErr = s.recv.Stop(ctx)
		s.cancelWork()
		s.client.forget(s)
	})
	return s.closeErr
}

// handlerContext carries the consumed message and the stopping signal
// without an allocation per context.WithValue layer.
type handlerContext struct {
	context.Context
	msg      *Message
	stopping chan struct{}
}

func (c *handlerContext) Value(key any) any {
	switch key {
	case consumedKey:
		return c.msg
	case stoppingKey:
		return c.stopping
	}
	return c.Context.Value(key)
}
