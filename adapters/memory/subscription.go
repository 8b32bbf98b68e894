package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// subscription is one member of a group. It remembers what it handed out
// and has not settled, so that Close can put it back.
type subscription struct {
	b       *broker
	g       *group
	onClose func()

	mu      sync.Mutex
	held    map[*driver.Message]envelope // what it handed out, by the message it made of it
	closed  bool
	closing chan struct{}
}

func newSubscription(b *broker, g *group, onClose func()) *subscription {
	return &subscription{b: b, g: g, onClose: onClose, held: map[*driver.Message]envelope{}, closing: make(chan struct{})}
}

// ReceiveBatch takes up to max messages, waiting for the first. Messages
// whose ordering key is held by another member stay for later.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	envs := s.g.take(ctx, s.closing, s.b.done, max)
	if len(envs) == 0 {
		select {
		case <-s.closing:
			return nil, fmt.Errorf("memory: subscription %w", sdk.ErrClosed)
		case <-s.b.done:
			return nil, fmt.Errorf("memory: broker %w", sdk.ErrClosed)
		default:
			return nil, ctx.Err()
		}
	}
	out := make([]*driver.Message, len(envs))
	msgs := make([]driver.Message, len(envs))
	for i, e := range envs {
		// Every group shares the envelope: each delivery gets its own copy
		// for the handler to keep and change.
		md := make(map[string]string, len(e.metadata))
		for k, v := range e.metadata {
			md[k] = v
		}
		msgs[i] = driver.Message{ID: e.id, Payload: append([]byte(nil), e.payload...), Metadata: md, OrderingKey: e.key}
		msgs[i].AckID = &msgs[i]
		out[i] = &msgs[i]
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		for i, e := range envs {
			s.held[out[i]] = e
		}
	}
	s.mu.Unlock()
	if closed {
		for _, e := range envs {
			s.g.settle(e, false)
		}
		return nil, nil
	}
	return out, nil
}

func (s *subscription) settle(ids []driver.AckID, acked bool) {
	for _, id := range ids {
		s.mu.Lock()
		e, ok := s.held[id.(*driver.Message)]
		delete(s.held, id.(*driver.Message))
		s.mu.Unlock()
		if ok { // not settled already, nor put back by Close
			s.g.settle(e, acked)
		}
	}
}

// SendAcks removes the messages from the group.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.settle(ids, true)
	return nil
}

// CanNack: a nacked message goes back to its place in the group's queue.
func (s *subscription) CanNack() bool { return true }

// SendNacks puts the messages back in publish order, at once: the memory
// broker has no timers.
func (s *subscription) SendNacks(_ context.Context, ids []driver.AckID, _ time.Duration) error {
	s.settle(ids, false)
	return nil
}

// ExtendAcks has nothing to do: a memory group never takes a message back.
func (s *subscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }

// Options: the in-process queue is cheap to ask, so small batches keep
// competing members fair.
func (s *subscription) Options() driver.Options { return driver.Options{MaxBatch: 16} }

// Close puts every message held and not settled back in the group.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	held := s.held
	s.held = map[*driver.Message]envelope{}
	s.mu.Unlock()
	for _, e := range held {
		s.g.settle(e, false)
	}
	if s.onClose != nil {
		s.onClose()
	}
	return nil
}
