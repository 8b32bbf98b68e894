package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// Publisher publishes to an in-process broker.
type Publisher struct {
	b      *broker
	mu     sync.RWMutex
	closed bool
}

// Publish delivers copies of msgs to every consumer group of topic. It
// returns sdk.ErrClosed after Close or once the broker is closed.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.publish(topic, len(msgs), func(i int) envelope {
		m := msgs[i]
		md := make(map[string]string, len(m.Metadata))
		for k, v := range m.Metadata {
			md[k] = v
		}
		return envelope{id: m.UUID, payload: append([]byte(nil), m.Payload...), metadata: md, key: md[sdk.KeyOrderingKey]}
	})
}

// PublishMessages is the sdk.MessagePublisher fast path of Client.Publish:
// the envelopes are made from the messages' parts, with no Watermill
// message in between. It stores what Publish stores.
func (p *Publisher) PublishMessages(_ context.Context, topic string, msgs []sdk.Outgoing) error {
	return p.publish(topic, len(msgs), func(i int) envelope {
		o := msgs[i]
		md := make(map[string]string, o.MetadataLen())
		o.Metadata(func(k, v string) bool { md[k] = v; return true })
		return envelope{id: o.ID(), payload: append([]byte(nil), o.Payload()...), metadata: md, key: md[sdk.KeyOrderingKey]}
	})
}

func (p *Publisher) publish(topic string, n int, envelopeOf func(i int) envelope) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("memory: publish to %q: publisher %w", topic, sdk.ErrClosed)
	}
	envs := make([]envelope, n)
	for i := range envs {
		envs[i] = envelopeOf(i)
	}
	if !p.b.publish(topic, envs) {
		return fmt.Errorf("memory: publish to %q: broker %w", topic, sdk.ErrClosed)
	}
	return nil
}

// Close makes further Publish calls fail. It is idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

// Subscriber consumes from an in-process broker as one member of a group per
// Subscribe call.
type Subscriber struct {
	b     *broker
	group string

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup
}

// Subscribe starts a consumer of topic in the subscriber's group. The group
// exists, and receives every message published from now on, when Subscribe
// returns. The channel closes when ctx ends or the subscriber is closed; a
// message in flight then is put back for redelivery.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: subscribe to %q: subscriber %w", topic, sdk.ErrClosed)
	}
	g, ok := s.b.group(topic, s.group)
	if !ok {
		return nil, fmt.Errorf("memory: subscribe to %q: broker %w", topic, sdk.ErrClosed)
	}
	out := make(chan *message.Message)
	s.running.Add(1)
	go s.consume(ctx, g, out)
	return out, nil
}

func (s *Subscriber) consume(ctx context.Context, g *group, out chan<- *message.Message) {
	defer s.running.Done()
	defer close(out)
	for {
		e, ok := g.take(ctx, s.closing, s.b.done)
		if !ok {
			return
		}
		wm := message.NewMessage(e.id, append([]byte(nil), e.payload...))
		for k, v := range e.metadata {
			wm.Metadata[k] = v
		}
		wm.SetContext(ctx)
		acked, alive := deliver(ctx, s.closing, s.b.done, out, wm)
		g.settle(e, acked)
		if !alive {
			return
		}
	}
}

// deliver hands wm to the consumer and waits for its ack or nack. It reports
// whether the message was acked and whether the consumer should go on.
func deliver(ctx context.Context, closing, brokerDone <-chan struct{}, out chan<- *message.Message, wm *message.Message) (acked, alive bool) {
	select {
	case out <- wm:
	case <-ctx.Done():
		return false, false
	case <-closing:
		return false, false
	case <-brokerDone:
		return false, false
	}
	select {
	case <-wm.Acked():
		return true, true
	case <-wm.Nacked():
		return false, true
	case <-ctx.Done():
	case <-closing:
	case <-brokerDone:
	}
	// The consumer may have acked just before it stopped, and select picks
	// at random among ready cases: an ack given must not be lost to the
	// stop, or the message is handled twice.
	select {
	case <-wm.Acked():
		return true, false
	default:
		return false, false
	}
}

// Close ends every subscription of this subscriber, closing their channels;
// messages in flight are put back for redelivery. It waits for the consumers
// to stop and is idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}

var errNoGroup = errors.New("memory: consumer group is empty; name the group (usually the service name)")

// SubscribeHandler is the sdk.HandlerSubscriber fast path: concurrency
// goroutines each take a message from the group, call handle and settle
// it, with no Watermill message built and no hand-off to another goroutine
// and back (two goroutine switches that cost more than the rest of a
// message here). Subscribe stays the contract; both take from the same
// group, so members of either kind compete and keep per-key order.
func (s *Subscriber) SubscribeHandler(ctx context.Context, topic string, concurrency int, handle func(sdk.Delivery) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: subscribe to %q: subscriber %w", topic, sdk.ErrClosed)
	}
	g, ok := s.b.group(topic, s.group)
	if !ok {
		return fmt.Errorf("memory: subscribe to %q: broker %w", topic, sdk.ErrClosed)
	}
	for range max(1, concurrency) {
		s.running.Add(1)
		go s.handleEach(ctx, g, handle)
	}
	return nil
}

func (s *Subscriber) handleEach(ctx context.Context, g *group, handle func(sdk.Delivery) bool) {
	defer s.running.Done()
	for {
		e, ok := g.take(ctx, s.closing, s.b.done)
		if !ok {
			return
		}
		md := make(map[string]string, len(e.metadata))
		for k, v := range e.metadata {
			md[k] = v
		}
		g.settle(e, handle(sdk.Delivery{ID: e.id, Payload: append([]byte(nil), e.payload...), Metadata: md}))
	}
}

var (
	_ message.Publisher     = (*Publisher)(nil)
	_ sdk.MessagePublisher  = (*Publisher)(nil)
	_ message.Subscriber    = (*Subscriber)(nil)
	_ sdk.HandlerSubscriber = (*Subscriber)(nil)
)
