package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
)

// Subscriber consumes one consumer group: each Subscribe call is one
// consumer on the group's queue, with its own channel and prefetch.
type Subscriber struct {
	t     *Transport
	group string

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	consumers sync.WaitGroup
}

// Subscribe declares the group's queue (so the group receives every message
// published from now on) and starts a consumer on it. After a broker
// restart the consumer reconnects, declares the topology again and goes on;
// unacked messages are redelivered by the broker.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("rabbitmq: subscribe to %q: subscriber %w", topic, sdk.ErrClosed)
	}
	n := s.t.s.names(topic, s.group)
	setupCtx, cancel := context.WithTimeout(ctx, s.t.s.publishTimeout)
	defer cancel()
	ch, err := s.t.consume.channel(setupCtx)
	if err != nil {
		return nil, err
	}
	err = s.t.s.declareGroup(ch, n)
	_ = ch.Close()
	if err != nil {
		return nil, err
	}
	s.t.noteDeclared(n)
	out := make(chan *message.Message)
	s.consumers.Add(1)
	go s.run(ctx, n, out)
	return out, nil
}

// run consumes until ctx ends or the subscriber closes, starting over on a
// new channel whenever the channel or connection breaks.
func (s *Subscriber) run(ctx context.Context, n names, out chan<- *message.Message) {
	defer s.consumers.Done()
	defer close(out)
	delay := 100 * time.Millisecond
	for {
		err := s.consume(ctx, n, out)
		if s.stopped(ctx) || errors.Is(err, sdk.ErrClosed) {
			return
		}
		s.t.logger.Warn("rabbitmq: consumer interrupted; resuming", "queue", n.queue, "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, s.t.s.reconnectMaxDelay)
	}
}

func (s *Subscriber) stopped(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-s.closing:
		return true
	default:
		return false
	}
}

var errConsumerCancelled = errors.New("the broker cancelled the consumer (queue deleted?)")

// consume runs one channel's consumer. It returns nil when told to stop and
// an error when the channel broke.
func (s *Subscriber) consume(ctx context.Context, n names, out chan<- *message.Message) error {
	ch, err := s.t.consume.channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close() // unacked prefetched messages go back to the queue
	if err := ch.Qos(s.t.s.prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	if err := s.t.s.declareGroup(ch, n); err != nil { // the broker may have restarted without this queue
		return err
	}
	deliveries, err := ch.Consume(n.queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", n.queue, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	acks := ackBatcher{ch: ch, max: max(1, s.t.s.prefetch/2)}
	defer acks.flush() // before the deferred ch.Close
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case d, ok = <-deliveries:
		default:
			// Nothing waiting: settle what was acked before blocking.
			acks.flush()
			select {
			case d, ok = <-deliveries:
			case err := <-closed:
				if err == nil { // an orderly close
					return errors.New("channel closed")
				}
				return fmt.Errorf("channel closed: %w", err)
			case <-ctx.Done():
				return nil
			case <-s.closing:
				return nil
			}
		}
		if !ok {
			return errConsumerCancelled
		}
		if !s.deliver(ctx, &d, out, &acks, tick.C) {
			return nil
		}
	}
}

// ackBatcher coalesces acks into one basic.ack with multiple=true. The
// raw-client pattern of one ack frame per message costs the broker as much
// CPU as the delivery itself; this sends one per batch, when no delivery is
// waiting, or after 100 ms with a handler still running. An ack not yet sent
// when the process dies means a redelivery, never a loss.
type ackBatcher struct {
	ch      *amqp.Channel
	max     int
	pending int
	last    uint64
}

func (a *ackBatcher) add(tag uint64) {
	a.last = tag
	a.pending++
	if a.pending >= a.max {
		a.flush()
	}
}

// flush acks every delivery up to the last acked one. Deliveries nacked in
// between are settled already and not affected by multiple=true.
func (a *ackBatcher) flush() {
	if a.pending == 0 {
		return
	}
	// A failure (the channel broke) leaves the messages to be redelivered.
	_ = a.ch.Ack(a.last, true)
	a.pending = 0
}

// deliver hands one message to the consumer and settles it with the broker.
// It returns false when the consumer should stop.
func (s *Subscriber) deliver(ctx context.Context, d *amqp.Delivery, out chan<- *message.Message, acks *ackBatcher, tick <-chan time.Time) bool {
	m := fromDelivery(d)
	m.SetContext(ctx)
	for sent := false; ; {
		var send chan<- *message.Message
		if !sent {
			send = out
		}
		select {
		case send <- m:
			sent = true
		case <-m.Acked():
			acks.add(d.DeliveryTag)
			return true
		case <-m.Nacked():
			_ = d.Nack(false, true)
			return true
		case <-tick:
			acks.flush() // a slow handler must not hold back the acks before it
		case <-ctx.Done():
			s.settleOnStop(m, d, acks)
			return false
		case <-s.closing:
			s.settleOnStop(m, d, acks)
			return false
		}
	}
}

// settleOnStop settles a message the consumer stops holding. The handler
// may have acked it just before the stop, and select picks at random among
// ready cases: an ack given must not turn into a requeue.
func (s *Subscriber) settleOnStop(m *message.Message, d *amqp.Delivery, acks *ackBatcher) {
	select {
	case <-m.Acked():
		acks.add(d.DeliveryTag)
	default:
		_ = d.Nack(false, true)
	}
}

// Close stops every consumer of this subscriber and closes their channels;
// unacked messages go back to the queue.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.consumers.Wait()
	s.t.forget(s)
	return nil
}
