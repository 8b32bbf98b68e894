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

	"github.com/msgkit/msgkit/sdk/driver"
	"github.com/msgkit/msgkit/sdk/internal/engine"
)

// Watermill is msgkit's compatibility surface: every driver transport is
// also a Watermill publisher and subscriber, built here once for all of
// them, and any Watermill publisher/subscriber pair can be wrapped as a
// driver transport (WatermillTransport).

// NewWatermillPublisher returns a Watermill publisher on t, with the same
// limits, batching and retries as Client.Publish. Its Close does not close
// t. A message's context (Message.Context of the first) bounds Publish.
func NewWatermillPublisher(t driver.Transport) message.Publisher {
	return &watermillPublisher{sender: engine.NewSender(t), limits: limits{caps: t.Capabilities()}, own: true}
}

type watermillPublisher struct {
	sender *engine.Sender
	limits limits
	own    bool // the sender is this publisher's, closed with it
	closed atomic.Bool
}

func (p *watermillPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.closed.Load() {
		return fmt.Errorf("messaging: publish to %s: publisher %w", QuoteName(topic), ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	structs := make([]driver.Message, len(msgs))
	dms := make([]*driver.Message, len(msgs))
	for i, wm := range msgs {
		md := make(map[string]string, len(wm.Metadata))
		for k, v := range wm.Metadata {
			md[k] = v
		}
		structs[i] = driver.Message{ID: wm.UUID, Payload: wm.Payload, Metadata: md, OrderingKey: md[KeyOrderingKey]}
		if err := p.limits.check(&structs[i]); err != nil {
			return fmt.Errorf("messaging: publish to %s: message %d (id %s): %w", QuoteName(topic), i, QuoteName(wm.UUID), err)
		}
		dms[i] = &structs[i]
	}
	if err := p.sender.Send(msgs[0].Context(), topic, dms); err != nil {
		if errors.Is(err, engine.ErrClosed) {
			err = ErrClosed
		}
		return fmt.Errorf("messaging: publish %d message(s) to %s: %w", len(dms), QuoteName(topic), err)
	}
	return nil
}

func (p *watermillPublisher) Close() error {
	if !p.closed.Swap(true) && p.own {
		p.sender.Close()
	}
	return nil
}

// NewWatermillSubscriber returns a Watermill subscriber on t in the given
// consumer group: each Subscribe call is one member of the group. A
// received message's context is cancelled once it is acked or nacked, or
// the subscription ends. Subscribe's ctx bounds the setup and the
// subscription: the channel closes when it ends or the subscriber closes.
func NewWatermillSubscriber(t driver.Transport, group string, logger *slog.Logger) message.Subscriber {
	if logger == nil {
		logger = slog.Default()
	}
	return &watermillSubscriber{t: t, group: group, logger: logger, closing: make(chan struct{}),
		backoff: engine.Backoff{Initial: DefaultNackBackoff, Max: DefaultNackBackoffMax}}
}

// WatermillCloseTimeout bounds how long a Watermill subscriber's Close, or
// the end of its Subscribe context, waits for a driver's subscription to
// stop; the Watermill API gives Close no context.
const WatermillCloseTimeout = 10 * time.Second

type watermillSubscriber struct {
	t       driver.Transport
	group   string
	logger  *slog.Logger
	backoff engine.Backoff // after a Nack

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	running sync.WaitGroup
}

// SubscribeInitialize creates the subscriber's group on topic without
// consuming (Watermill's message.SubscribeInitializer), so that what is
// published before the first Subscribe is kept for the group.
func (s *watermillSubscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), WatermillCloseTimeout)
	defer cancel()
	return ensureGroup(ctx, s.t, topic, s.group)
}

func (s *watermillSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("messaging: subscribe to %s: subscriber %w", QuoteName(topic), ErrClosed)
	}
	s.running.Add(1)
	s.mu.Unlock()
	ds, err := s.t.OpenSubscription(ctx, topic, s.group)
	if err != nil {
		s.running.Done()
		return nil, fmt.Errorf("messaging: subscribe to %s in group %s: %w", QuoteName(topic), QuoteName(s.group), err)
	}
	out := make(chan *message.Message)
	stop := make(chan struct{})
	msgCtx, cancelMsgs := context.WithCancel(context.WithoutCancel(ctx))
	r := engine.Start(ds, func(dm *driver.Message) bool { return handOff(msgCtx, out, stop, dm) },
		engine.Config{Logger: s.logger, Where: fmt.Sprintf("%s in group %s", QuoteName(topic), QuoteName(s.group)), NackBackoff: s.backoff})
	go func() {
		defer s.running.Done()
		select {
		case <-ctx.Done():
		case <-s.closing:
		}
		close(stop)
		// Watermill's Close takes no context; a driver that does not stop
		// must not hang it for ever.
		stopCtx, cancel := context.WithTimeout(context.Background(), WatermillCloseTimeout)
		defer cancel()
		if err := r.Stop(stopCtx); err != nil {
			s.logger.Warn("messaging: closing a subscription", "error", err)
		}
		cancelMsgs()
		close(out)
	}()
	return out, nil
}

// handOff gives dm to the channel's reader as a Watermill message and waits
// for its ack or nack: the one hand-off between a driver and Watermill
// code. The message's context ends with the verdict.
func handOff(ctx context.Context, out chan<- *message.Message, stop <-chan struct{}, dm *driver.Message) bool {
	wm := message.NewMessage(receivedID(dm), dm.Payload)
	wm.Metadata = dm.Metadata
	if wm.Metadata == nil {
		wm.Metadata = message.Metadata{}
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wm.SetContext(mctx)
	select {
	case out <- wm:
	case <-stop:
		return false
	}
	select {
	case <-wm.Acked():
		return true
	case <-wm.Nacked():
		return false
	case <-stop:
		// An ack given just before the stop must not be lost to the
		// select's random choice among ready cases.
		select {
		case <-wm.Acked():
			return true
		default:
			return false
		}
	}
}

// Close ends every subscription of this subscriber, closing their
// channels; messages in flight go back for redelivery. It waits for them
// to stop and is idempotent.
func (s *watermillSubscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}

var _ message.SubscribeInitializer = (*watermillSubscriber)(nil)
