package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Handler processes one message. Returning nil acknowledges it; returning an
// error (or panicking) leaves it for redelivery. ctx is cancelled when the
// Client's shutdown deadline passes.
type Handler func(ctx context.Context, msg *Message) error

// SubscribeOption configures one subscription.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	concurrency int
}

// WithConcurrency runs n handlers at once for this subscription (default 1).
// Each is a competing consumer of the group, so with n > 1 only a driver
// with Ordering == OrderingPerKey keeps per-key order.
func WithConcurrency(n int) SubscribeOption {
	return func(o *subscribeOptions) {
		if n > 0 {
			o.concurrency = n
		}
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
	sub     message.Subscriber

	stopping   chan struct{} // closed: take no more messages
	cancelSub  context.CancelFunc
	subDone    <-chan struct{} // the driver's context is done: it is being closed
	handlerCtx context.Context
	cancelWork context.CancelFunc // cancels running handlers at the deadline
	loops      sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error

	// On the HandlerSubscriber path the driver's goroutines call the
	// handler; these count the calls running, for Close to wait on.
	direct   bool
	activeMu sync.Mutex
	active   int
	stopped  bool
	idle     chan struct{} // closed when stopped and active reaches 0
}

// Subscribe starts consuming topic as a member of group, calling h for each
// message. Members of one group share the messages; each group receives all
// of them. Consumption has started (the group exists on the broker) when
// Subscribe returns.
func (c *Client) Subscribe(topic, group string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if topic == "" {
		return nil, errors.New("messaging: subscribe: topic is empty; name the topic to consume")
	}
	if group == "" {
		return nil, fmt.Errorf("messaging: subscribe to %q: group is empty; name the consumer group (usually the service name)", topic)
	}
	if h == nil {
		return nil, fmt.Errorf("messaging: subscribe to %q: handler is nil", topic)
	}
	o := subscribeOptions{concurrency: 1}
	for _, opt := range opts {
		opt(&o)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("messaging: subscribe to %q: %w", topic, ErrClosed)
	}
	sub, err := c.transport.Subscriber(group)
	if err != nil {
		return nil, fmt.Errorf("messaging: subscribe to %q in group %q: %w", topic, group, err)
	}
	subCtx, cancelSub := context.WithCancel(context.Background())
	handlerCtx, cancelWork := context.WithCancel(context.Background())
	s := &Subscription{
		client: c, topic: topic, group: group, handler: h, sub: sub,
		stopping: make(chan struct{}), cancelSub: cancelSub, subDone: subCtx.Done(),
		handlerCtx: handlerCtx, cancelWork: cancelWork,
	}
	if hs, ok := sub.(HandlerSubscriber); ok {
		s.direct = true
		if err := hs.SubscribeHandler(subCtx, topic, o.concurrency, s.handleDirect); err != nil {
			cancelSub()
			cancelWork()
			_ = sub.Close()
			return nil, fmt.Errorf("messaging: subscribe to %q in group %q: %w", topic, group, err)
		}
		c.subs[s] = struct{}{}
		return s, nil
	}
	for i := 0; i < o.concurrency; i++ {
		ch, err := sub.Subscribe(subCtx, topic)
		if err != nil {
			cancelSub()
			cancelWork()
			close(s.stopping)
			s.loops.Wait()
			_ = sub.Close()
			return nil, fmt.Errorf("messaging: subscribe to %q in group %q: %w", topic, group, err)
		}
		s.loops.Add(1)
		go s.consume(ch)
	}
	c.subs[s] = struct{}{}
	return s, nil
}

func (s *Subscription) consume(ch <-chan *message.Message) {
	defer s.loops.Done()
	for {
		// Checked first so that a stopped subscription takes no new message
		// even when one is already waiting in the channel.
		select {
		case <-s.stopping:
			return
		default:
		}
		select {
		case <-s.stopping:
			return
		case wm, ok := <-ch:
			if !ok {
				return
			}
			s.handle(wm)
		}
	}
}

// handleDirect is the handler a HandlerSubscriber calls on its own
// goroutines. Once the subscription is stopping it takes no new message:
// the message is nacked, for the broker to redeliver.
func (s *Subscription) handleDirect(d Delivery) bool {
	s.activeMu.Lock()
	if s.stopped {
		s.activeMu.Unlock()
		// Hold the driver's goroutine until the driver is being closed, as
		// the channel path stops reading: a driver that redelivers a nacked
		// message at once (the memory broker does) would otherwise hand it
		// straight back here, in a busy loop for the whole drain.
		<-s.subDone
		return false
	}
	s.active++
	s.activeMu.Unlock()
	// The message and its handler context in one allocation.
	r := new(struct {
		msg Message
		ctx handlerContext
	})
	fillReceived(&r.msg, d.ID, d.Payload, d.Metadata)
	acked := s.process(&r.msg, &r.ctx)
	s.activeMu.Lock()
	s.active--
	if s.stopped && s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.activeMu.Unlock()
	return acked
}

func (s *Subscription) handle(wm *message.Message) {
	if s.process(fromWatermill(wm, false), new(handlerContext)) {
		wm.Ack()
	} else {
		wm.Nack()
	}
}

// process runs the handler on msg, with ctx as the memory of its
// context, and reports whether to ack it.
func (s *Subscription) process(msg *Message, ctx *handlerContext) bool {
	// The handler context is the subscription's: it is cancelled only at the
	// shutdown deadline, so a per-message context would cost an allocation
	// per message and add nothing.
	msg.topic, msg.group = s.topic, s.group
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
// to finish, then closes the underlying subscriber. Handlers still running
// at the deadline get their context cancelled; their messages are left
// unacknowledged for redelivery and Close reports it.
func (s *Subscription) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.stopping)
		done := make(chan struct{})
		if s.direct {
			s.activeMu.Lock()
			s.stopped = true
			if s.active == 0 {
				close(done)
			} else {
				s.idle = done
			}
			s.activeMu.Unlock()
		} else {
			go func() { s.loops.Wait(); close(done) }()
		}
		stuck := false
		select {
		case <-done:
		case <-ctx.Done():
			stuck = true
			s.cancelWork()
			s.closeErr = fmt.Errorf("messaging: subscription %q/%q: handlers still running at the shutdown deadline; their messages will be redelivered: %w",
				s.topic, s.group, ctx.Err())
		}
		s.cancelSub()
		if stuck && s.direct {
			// The driver's goroutines run the handlers, so closing it waits
			// for them; a handler that ignores its cancelled context must
			// not hold Close past the deadline (the channel path abandons
			// such a handler the same way).
			go func() { _ = s.sub.Close() }()
		} else if err := s.sub.Close(); err != nil {
			s.closeErr = errors.Join(s.closeErr, fmt.Errorf("messaging: close subscriber %q/%q: %w", s.topic, s.group, err))
		}
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
