package jetstreamdriver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/sdk/driver"
)

// subscription is one member of a group: it fetches batches from the
// group's consumer and settles messages by their jetstream.Msg.
type subscription struct {
	t      *Transport
	c      jetstream.Consumer
	stream string

	mu     sync.Mutex // held by ReceiveBatch and Close, never both at once
	batch  jetstream.MessageBatch
	closed bool
}

// ReceiveBatch waits for the first message of the open fetch (or a new
// one), then takes what else has arrived. What a fetch brings later stays
// in it for the next call.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%s: subscription %w", DriverName, driver.ErrClosed)
	}
	if s.batch == nil {
		b, err := s.c.Fetch(s.t.o.BatchSize, jetstream.FetchMaxWait(s.t.o.FetchWait))
		if err != nil {
			return nil, fmt.Errorf("%s: fetch from %q: %w", DriverName, s.stream, err)
		}
		s.batch = b
	}
	var out []*driver.Message
	for len(out) < max {
		var m jetstream.Msg
		var open bool
		if len(out) == 0 {
			select {
			case m, open = <-s.batch.Messages():
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		} else {
			select {
			case m, open = <-s.batch.Messages():
			default:
				return out, nil
			}
		}
		if !open { // the fetch is over: the next call starts another
			s.batch = nil
			return out, nil
		}
		out = append(out, s.decode(m))
	}
	return out, nil
}

// decode rebuilds a message. One from another producer has no metadata
// header: its own headers (but the server's, Nats-*) are its metadata,
// so that its content type and CloudEvents attributes arrive; without an
// id it gets stream-sequence, the same on every redelivery, marked
// DerivedID (the SDK takes a CloudEvents event id the message holds
// instead).
func (s *subscription) decode(m jetstream.Msg) *driver.Message {
	h := m.Headers()
	dm := &driver.Message{ID: h.Get(idHeader), Payload: m.Data(), Metadata: map[string]string{}, AckID: m}
	_ = json.Unmarshal([]byte(dm.ID), &dm.ID) // quoted by SendBatch; another producer's id is used as it is
	if md := h[mdHeader]; len(md) > 0 {
		_ = json.Unmarshal([]byte(md[0]), &dm.Metadata)
	} else {
		for k, vs := range h {
			if k != idHeader && len(vs) > 0 && !strings.HasPrefix(strings.ToLower(k), "nats-") {
				dm.Metadata[k] = strings.Join(vs, ",")
			}
		}
	}
	if meta, err := m.Metadata(); err == nil {
		dm.Attempt = int(meta.NumDelivered)
		if dm.ID == "" {
			dm.ID, dm.DerivedID = s.stream+"-"+strconv.FormatUint(meta.Sequence.Stream, 10), true
		}
	}
	if dm.Payload == nil {
		dm.Payload = []byte{}
	}
	return dm
}

// SendAcks acks each message, then flushes, so that the acks have left
// before the call returns.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	return s.settle(ctx, ids, func(m jetstream.Msg) error { return m.Ack() })
}

// CanNack: a NAK hands a message back to the group.
func (s *subscription) CanNack() bool { return true }

// SendNacks hands the messages back after delay.
func (s *subscription) SendNacks(ctx context.Context, ids []driver.AckID, delay time.Duration) error {
	return s.settle(ctx, ids, func(m jetstream.Msg) error { return m.NakWithDelay(delay) })
}

// ExtendAcks restarts the ack wait of messages still being handled.
func (s *subscription) ExtendAcks(ctx context.Context, ids []driver.AckID) error {
	return s.settle(ctx, ids, func(m jetstream.Msg) error { return m.InProgress() })
}

func (s *subscription) settle(ctx context.Context, ids []driver.AckID, f func(jetstream.Msg) error) error {
	for _, id := range ids {
		if err := f(id.(jetstream.Msg)); err != nil {
			return fmt.Errorf("%s: settle a message of %q: %w", DriverName, s.stream, err)
		}
	}
	return s.t.nc.FlushWithContext(ctx)
}

// Options: batches of batch_size, the ack wait as the lease, and a NAK
// that waits its delay.
func (s *subscription) Options() driver.Options {
	return driver.Options{MaxBatch: s.t.o.BatchSize, Lease: s.t.o.AckWait, DelaysNacks: true}
}

// Close hands back what the open fetch still brings, until it ends.
func (s *subscription) Close() error {
	defer s.t.subs.Remove(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.batch != nil {
		for m := range s.batch.Messages() {
			_ = m.Nak()
		}
	}
	return nil
}
