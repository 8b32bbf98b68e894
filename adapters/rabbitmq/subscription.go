package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// subscription is one consumer on a group's queue, with its own channel
// and prefetch. After a broker restart the next ReceiveBatch opens a new
// channel, declares the topology again and consumes on; the broker
// redelivers what was unacked on the old one.
type subscription struct {
	t *Transport
	n names

	mu         sync.Mutex
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	lost       <-chan *amqp.Error
	gen        uint64              // counts channels; an ack id of an older one is stale
	unsettled  map[uint64]struct{} // delivery tags of the current channel not yet settled
	closed     bool
}

// ackID names a delivery: its tag on the channel of generation gen. A
// message's AckID is a pointer to one, which an interface holds without
// an allocation of its own.
type ackID struct{ gen, tag uint64 }

// received is a delivered message with its ack id: a batch's come from
// one allocation.
type received struct {
	m  driver.Message
	id ackID
}

var errConsumerCancelled = errors.New("the broker cancelled the consumer (queue deleted?)")

// open starts consuming on a new channel. s.mu is held.
func (s *subscription) open(ctx context.Context) error {
	var deliveries <-chan amqp.Delivery
	ch, err := s.t.consume.channel(ctx, func(ch *amqp.Channel) error {
		if err := ch.Qos(s.t.s.Prefetch, 0, false); err != nil {
			return fmt.Errorf("rabbitmq: set prefetch: %w", err)
		}
		if err := s.t.s.declareGroup(ch, s.n); err != nil { // the broker may have restarted without this queue
			return err
		}
		var err error
		if deliveries, err = ch.Consume(s.n.queue, "", false, false, false, false, nil); err != nil {
			return fmt.Errorf("rabbitmq: consume %q: %w", s.n.queue, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.ch, s.deliveries, s.lost = ch, deliveries, ch.NotifyClose(make(chan *amqp.Error, 1))
	s.gen++
	s.unsettled = map[uint64]struct{}{}
	return nil
}

// drop forgets a broken channel; its unacked deliveries go back to the queue.
// The channel is closed after s.mu is released: closing one whose consumer
// the broker cancelled waits for the broker's close-ok, and acks of the
// next channel must not wait behind it.
func (s *subscription) drop() {
	s.mu.Lock()
	ch := s.ch
	s.ch, s.deliveries, s.lost = nil, nil, nil
	s.mu.Unlock()
	if ch != nil {
		_ = ch.Close()
	}
}

// ReceiveBatch waits for a delivery, then takes what else the prefetch
// window already holds, up to max.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("rabbitmq: subscription %w", sdk.ErrClosed)
	}
	if s.ch == nil {
		if err := s.open(ctx); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	deliveries, lost, gen := s.deliveries, s.lost, s.gen
	s.mu.Unlock()

	var batch []amqp.Delivery
	select {
	case d, ok := <-deliveries:
		if !ok {
			s.drop()
			return nil, errConsumerCancelled
		}
		batch = append(batch, d)
	case err := <-lost:
		s.drop()
		if err == nil {
			return nil, errors.New("rabbitmq: channel closed")
		}
		return nil, fmt.Errorf("rabbitmq: channel closed: %w", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
drain:
	for len(batch) < max {
		select {
		case d, ok := <-deliveries:
			if !ok { // the next call sees the cancelled consumer
				break drain
			}
			batch = append(batch, d)
		default:
			break drain
		}
	}
	out := make([]*driver.Message, len(batch))
	msgs := make([]received, len(batch)) // one allocation a batch
	s.mu.Lock()
	for i := range batch {
		d := &batch[i]
		if s.gen == gen {
			s.unsettled[d.DeliveryTag] = struct{}{}
		}
		r := &msgs[i]
		out[i] = &r.m
		fromDelivery(out[i], d)
		r.id = ackID{gen, d.DeliveryTag}
		out[i].AckID = &r.id
		if s.t.s.Exchange != "" && s.n.exchange == s.t.s.Exchange {
			// A shared topic exchange: the routing key is the topic the
			// message was published to, which a pattern (order.*) does
			// not say.
			out[i].Topic = d.RoutingKey
		}
	}
	s.mu.Unlock()
	return out, nil
}

// current returns the tags of ids that belong to the open channel, sorted,
// and forgets them as unsettled. Others are of a channel that broke: the
// broker redelivers those. s.mu is held.
func (s *subscription) current(ids []driver.AckID) []uint64 {
	tags := make([]uint64, 0, len(ids))
	for _, id := range ids {
		a := id.(*ackID)
		if a.gen == s.gen && s.ch != nil {
			tags = append(tags, a.tag)
		}
	}
	slices.Sort(tags)
	return tags
}

// SendAcks acks with one basic.ack multiple=true when the batch holds every
// unsettled delivery up to its last (the usual case: a broker spends as much
// CPU on an ack frame as on a delivery), and one by one otherwise.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tags := s.current(ids)
	if len(tags) == 0 {
		return nil
	}
	last := tags[len(tags)-1]
	below := 0
	for tag := range s.unsettled {
		if tag <= last {
			below++
		}
	}
	for _, tag := range tags {
		delete(s.unsettled, tag)
	}
	if below == len(tags) {
		return s.ch.Ack(last, true)
	}
	for _, tag := range tags {
		if err := s.ch.Ack(tag, false); err != nil {
			return err
		}
	}
	return nil
}

// CanNack: a nacked delivery is requeued.
func (s *subscription) CanNack() bool { return true }

// SendNacks requeues the deliveries at once: RabbitMQ has no delay on a
// requeue.
func (s *subscription) SendNacks(_ context.Context, ids []driver.AckID, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tag := range s.current(ids) {
		delete(s.unsettled, tag)
		if err := s.ch.Nack(tag, false, true); err != nil {
			return err
		}
	}
	return nil
}

// ExtendAcks has nothing to do: RabbitMQ keeps a delivery with its
// consumer until the channel closes.
func (s *subscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }

// Options: batches of the prefetch window, acked half a window at a time.
func (s *subscription) Options() driver.Options {
	return driver.Options{MaxBatch: s.t.s.Prefetch, AckBatch: max(1, s.t.s.Prefetch/2)}
}

// Close closes the channel: deliveries not acked go back to the queue (a
// reply queue, exclusive and auto-deleted, goes away).
func (s *subscription) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.drop()
	s.t.subs.Remove(s)
	return nil
}
