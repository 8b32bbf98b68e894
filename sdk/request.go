package sdk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of request/reply.
const (
	KeyInReplyTo  = "in-reply-to" // on a reply: the id of the request it answers
	KeyReplyError = "x-reply-error"
	// ReplyTopicPrefix starts every client's private reply topic. Adapters
	// may treat such topics as temporary (no durable broker objects).
	ReplyTopicPrefix = "_reply."
)

// DefaultRequestTimeout bounds Request when its context has no deadline.
const DefaultRequestTimeout = 30 * time.Second

// ErrNoRequestReply is returned by Request on a transport that does not
// declare the RequestReply capability.
var ErrNoRequestReply = errors.New("messaging: this driver does not support request/reply")

// RemoteError is a responder's error, returned by Request.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return "responder failed: " + e.Message }

// ReplyTransport is implemented by transports that can give a client a
// private reply topic whose broker resources go away with it (a RabbitMQ
// exclusive queue, a Redis stream deleted on close). Transports without it
// get a regular subscription on the reply topic.
type ReplyTransport interface {
	ReplySubscriber(topic string) (message.Subscriber, error)
}

// replies routes replies arriving on the client's reply topic to the
// Request calls waiting for them.
type replies struct {
	once    sync.Once
	err     error
	topic   string
	sub     message.Subscriber
	mu      sync.Mutex
	waiting map[string]chan *Message
	done    chan struct{}
}

func (c *Client) startReplies() error {
	c.replies.once.Do(func() {
		r := &c.replies
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		r.topic = ReplyTopicPrefix + hex.EncodeToString(b)
		r.waiting = map[string]chan *Message{}
		r.done = make(chan struct{})
		var sub message.Subscriber
		var err error
		if rt, ok := c.transport.(ReplyTransport); ok {
			sub, err = rt.ReplySubscriber(r.topic)
		} else {
			sub, err = c.transport.Subscriber(r.topic)
		}
		if err != nil {
			r.err = fmt.Errorf("messaging: open the reply topic: %w", err)
			return
		}
		ch, err := sub.Subscribe(context.Background(), r.topic)
		if err != nil {
			_ = sub.Close()
			r.err = fmt.Errorf("messaging: subscribe to the reply topic: %w", err)
			return
		}
		r.sub = sub
		go r.dispatch(ch)
	})
	return c.replies.err
}

// dispatch hands each reply to its waiting request. A reply nobody waits for
// any more (its request timed out) is dropped.
func (r *replies) dispatch(ch <-chan *message.Message) {
	defer close(r.done)
	for wm := range ch {
		reply := fromWatermill(wm, false)
		r.mu.Lock()
		w, ok := r.waiting[reply.Get(KeyInReplyTo)]
		delete(r.waiting, reply.Get(KeyInReplyTo))
		r.mu.Unlock()
		if ok {
			w <- reply // buffered: never blocks
		}
		wm.Ack()
	}
}

func (r *replies) close() error {
	if r.sub == nil {
		return nil
	}
	err := r.sub.Close()
	<-r.done
	return err
}

// Request publishes msg to topic with this client's reply address and waits
// for the reply, until ctx ends (or DefaultRequestTimeout when ctx has no
// deadline). Many requests may be in flight at once; each gets its own
// reply. A reply that arrives after its request gave up is discarded. A
// responder's error comes back as *RemoteError.
func (c *Client) Request(ctx context.Context, topic string, msg *Message) (*Message, error) {
	if !c.caps.RequestReply {
		return nil, fmt.Errorf("messaging: request to %q via %s: %w", topic, c.driver, ErrNoRequestReply)
	}
	if msg == nil {
		return nil, fmt.Errorf("messaging: request to %q: message is nil", topic)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	if err := c.startReplies(); err != nil {
		return nil, err
	}
	if msg.ID == "" {
		msg.ID = NewMessage(nil).ID
	}
	msg.Set(KeyReplyTo, c.replies.topic)
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
	if err := c.Publish(ctx, topic, msg); err != nil {
		forget()
		return nil, err
	}
	select {
	case reply := <-wait:
		if e := reply.Get(KeyReplyError); e != "" {
			return nil, &RemoteError{Message: e}
		}
		return reply, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("messaging: request %s to %q: no reply: %w", msg.ID, topic, ctx.Err())
	}
}

// Responder answers a request. The reply it returns is sent to the
// requester; an error is sent back as the requester's *RemoteError.
type Responder func(ctx context.Context, req *Message) (*Message, error)

// Respond subscribes r to topic in group: each request's reply is published
// to the request's reply address, correlated with it. A request without a
// reply address is handled and acknowledged with nothing sent back. If the
// reply cannot be published, the request is nacked and comes again.
func (c *Client) Respond(topic, group string, r Responder, opts ...SubscribeOption) (*Subscription, error) {
	if r == nil {
		return nil, fmt.Errorf("messaging: respond on %q: responder is nil", topic)
	}
	return c.Subscribe(topic, group, func(ctx context.Context, req *Message) error {
		reply, err := r(ctx, req)
		to := req.Get(KeyReplyTo)
		if to == "" {
			return err
		}
		if reply == nil {
			reply = NewMessage(nil)
		}
		if err != nil {
			reply.Set(KeyReplyError, err.Error())
		}
		reply.Set(KeyInReplyTo, req.ID)
		return c.Publish(ctx, to, reply)
	}, opts...)
}
