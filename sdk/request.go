package sdk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/internal/lock"
	"github.com/msgkit/msgkit/sdk/driver"
	"github.com/msgkit/msgkit/sdk/internal/engine"
)

// Metadata keys of request/reply.
const (
	KeyInReplyTo  = "in-reply-to" // on a reply: the id of the request it answers
	KeyReplyError = "x-reply-error"
	// KeyReplyErrorCode is, on a reply, the code of a responder's Reject.
	KeyReplyErrorCode = "x-reply-error-code"
	// KeyDeadline is, on a request, when its caller stops waiting (RFC
	// 3339, UTC). A responder drops a request past it without answering.
	KeyDeadline = "x-deadline"
	// ReplyTopicPrefix starts every client's private reply topic; see
	// driver.Transport.OpenReplySubscription.
	ReplyTopicPrefix = driver.ReplyTopicPrefix
)

// DefaultRequestTimeout bounds Request when its context has no deadline.
const DefaultRequestTimeout = 30 * time.Second

// ErrNoRequestReply is returned by Request on a transport that does not
// declare the RequestReply capability.
var ErrNoRequestReply = errors.New("messaging: this driver does not support request/reply")

// RemoteError is a responder's error, returned by Request. Code is set when
// the responder refused the request with Reject (a reason the caller can
// act on, such as "out_of_stock"), and is CodeInternal when the responder
// panicked or its reply could not be published; it is empty for any other
// failure.
type RemoteError struct{ Code, Message string }

func (e *RemoteError) Error() string {
	switch e.Code {
	case "":
		return "responder failed: " + e.Message
	case CodeInternal:
		return "responder failed (" + CodeInternal + "): " + e.Message
	}
	return "responder refused the request: " + e.Code + ": " + e.Message
}

// replies routes replies arriving on the client's reply topic to the
// Request calls waiting for them.
type replies struct {
	setup   lock.Mutex // held while the reply subscription opens; a request with an earlier deadline gives up waiting for it
	topic   string
	recv    *engine.Receiver
	mu      sync.Mutex
	waiting map[string]chan *Message
}

// startReplies opens the client's reply subscription on first use. A
// failed attempt is tried again by the next Request.
func (c *Client) startReplies(ctx context.Context) error {
	r := &c.replies
	if err := r.setup.Lock(ctx); err != nil {
		return fmt.Errorf("messaging: waiting for another request to open the reply topic: %w", err)
	}
	defer r.setup.Unlock()
	if r.recv != nil {
		return nil
	}
	if r.topic == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.topic = ReplyTopicPrefix + hex.EncodeToString(b)
		r.waiting = map[string]chan *Message{}
	}
	ds, err := c.transport.OpenReplySubscription(ctx, r.topic)
	if err != nil {
		return fmt.Errorf("messaging: open the reply topic: %w", err)
	}
	if c.isClosed() {
		// Close gave up waiting for this while the broker was slow: it
		// will not stop what starts now, so nothing starts.
		_ = ds.Close()
		return fmt.Errorf("messaging: open the reply topic: %w", ErrClosed)
	}
	r.recv = engine.Start(ds, r.dispatch, engine.Config{Logger: c.logger, Where: "reply topic " + r.topic})
	return nil
}

// dispatch hands a reply to its waiting request. A reply nobody waits for
// any more (its request timed out) is dropped.
func (r *replies) dispatch(dm *driver.Message) bool {
	reply := new(Message)
	fillReceived(reply, receivedID(dm), dm.Payload, dm.Metadata)
	id := reply.Get(KeyInReplyTo)
	r.mu.Lock()
	w, ok := r.waiting[id]
	delete(r.waiting, id)
	r.mu.Unlock()
	if ok {
		w <- reply // buffered: never blocks
	}
	return true
}

func (r *replies) close(ctx context.Context) error {
	if err := r.setup.Lock(ctx); err != nil {
		return fmt.Errorf("waiting for a request to finish opening the reply topic: %w", err)
	}
	defer r.setup.Unlock()
	if r.recv == nil {
		return nil
	}
	return r.recv.Stop(ctx)
}

// Request publishes msg to topic with this client's reply address and waits
// for the reply, until ctx ends (or DefaultRequestTimeout when ctx has no
// deadline). Many requests may be in flight at once; each gets its own
// reply. A reply that arrives after its request gave up is discarded. A
// responder's error comes back as *RemoteError.
func (c *Client) Request(ctx context.Context, topic string, msg *Message) (*Message, error) {
	if !c.caps.RequestReply {
		return nil, fmt.Errorf("messaging: request to %s via %s: %w", QuoteName(topic), c.driver, ErrNoRequestReply)
	}
	if msg == nil {
		return nil, fmt.Errorf("messaging: request to %s: message is nil", QuoteName(topic))
	}
	if c.isClosed() {
		return nil, fmt.Errorf("messaging: request to %s: %w", QuoteName(topic), ErrClosed)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	if err := c.startReplies(ctx); err != nil {
		return nil, err
	}
	if msg.ID == "" {
		msg.ID = NewMessage(nil).ID
	}
	msg.Set(KeyReplyTo, c.replies.topic)
	if d, ok := ctx.Deadline(); ok {
		msg.Set(KeyDeadline, d.UTC().Format(time.RFC3339Nano))
	}
	wait := make(chan *Message, 1)
	r := &c.replies
	r.mu.Lock()
	r.waiting[msg.ID] = wait
	r.mu.Unlock()
	forget := func() {
		r.mu.Lock()
		delete(r.waiting, msg.ID)
		r.mu.Unlock()
	}
	sent := time.Now()
	if err := c.Publish(ctx, topic, msg); err != nil {
		forget()
		return nil, err
	}
	select {
	case reply := <-wait:
		if e := reply.Get(KeyReplyError); e != "" {
			return nil, &RemoteError{Code: reply.Get(KeyReplyErrorCode), Message: e}
		}
		return reply, nil
	case <-ctx.Done():
		forget()
		waited := time.Since(sent).Round(time.Millisecond)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("messaging: request %s to %s: no reply within %v of sending it, by the deadline (is a responder subscribed to the topic, and does it answer in time?): %w",
				QuoteName(msg.ID), QuoteName(topic), waited, ctx.Err())
		}
		return nil, fmt.Errorf("messaging: request %s to %s: given up after %v without a reply: %w", QuoteName(msg.ID), QuoteName(topic), waited, ctx.Err())
	}
}

// Responder answers a request. The reply it returns is sent to the
// requester; an error is sent back as the requester's *RemoteError.
type Responder func(ctx context.Context, req *Message) (*Message, error)

// Respond subscribes r to topic in group: each request's reply is published
// to the request's reply address, correlated with it. group is the
// responders' consumer group: responders sharing it share the requests
// (each request answered once), as instances of one service do, and the
// group keeps requests while no responder runs. A request without a reply
// address is handled and acknowledged with nothing sent back. If the reply
// cannot be published for a while, the request is nacked and comes again;
// a reply Publish refuses (IsRefused), and a panic of r, are answered with
// a CodeInternal error instead. ctx bounds the setup, as for Subscribe.
//
// A request whose caller has given up (its KeyDeadline has passed) is
// dropped without calling r and counted (ExpiredRequests); otherwise r's
// context ends at that deadline. WithMiddleware options wrap r's call.
func (c *Client) Respond(ctx context.Context, topic, group string, r Responder, opts ...SubscribeOption) (*Subscription, error) {
	if r == nil {
		return nil, fmt.Errorf("messaging: respond on %s: responder is nil", QuoteName(topic))
	}
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	expired := new(atomic.Int64)
	answer := func(ctx context.Context, req *Message) error {
		var deadline time.Time
		if d := req.Get(KeyDeadline); d != "" {
			if t, err := time.Parse(time.RFC3339Nano, d); err == nil {
				deadline = t
			}
		}
		if !deadline.IsZero() {
			if !c.now().Before(deadline) {
				expired.Add(1)
				c.logger.Debug("messaging: request dropped: its caller's deadline has passed", "topic", topic, "id", req.ID, "deadline", deadline)
				return nil
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		var reply *Message
		err := wrap(func(ctx context.Context, req *Message) (err error) {
			defer func() {
				if p := recover(); p != nil {
					// Answered as an error: as a handler's panic it would
					// come back and panic again until its caller gave up.
					pe := &PanicError{Value: p, Stack: debug.Stack()}
					c.logger.Error("messaging: responder panicked; the caller gets an error reply", "topic", topic, "id", req.ID, "panic", p, "stack", string(pe.Stack))
					err = Reject(CodeInternal, pe.Error())
				}
			}()
			reply, err = r(ctx, req)
			return err
		}, o.middleware)(ctx, req)
		to := req.Get(KeyReplyTo)
		if to == "" {
			return err
		}
		if reply == nil {
			reply = NewMessage(nil)
		}
		if err != nil {
			reply.Set(KeyReplyError, err.Error())
			if code, message, ok := rejection(err); ok {
				reply.Set(KeyReplyErrorCode, code)
				reply.Set(KeyReplyError, message)
			}
		}
		reply.Set(KeyInReplyTo, req.ID)
		pubErr := c.Publish(context.WithoutCancel(ctx), to, reply)
		if !IsRefused(pubErr) {
			return pubErr
		}
		// The reply itself cannot be sent (too large, metadata or a time
		// the broker cannot carry): the caller hears why, instead of the
		// request coming again, to fail again, until its caller gives up.
		c.logger.Warn("messaging: a responder's reply cannot be published; the caller gets an error reply", "topic", topic, "id", req.ID, "error", pubErr)
		failed := NewMessage(nil)
		failed.Set(KeyReplyErrorCode, CodeInternal)
		failed.Set(KeyReplyError, "the responder's reply cannot be published: "+pubErr.Error())
		failed.Set(KeyInReplyTo, req.ID)
		return c.Publish(context.WithoutCancel(ctx), to, failed)
	}
	// The middleware wraps the responder's call above, not the reply.
	s, err := c.Subscribe(ctx, topic, group, answer, append(opts, func(o *subscribeOptions) { o.middleware = nil })...)
	if err != nil {
		return nil, err
	}
	s.expired = expired
	return s, nil
}
