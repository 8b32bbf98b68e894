package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk/driver"
)

// WatermillTransport wraps a Watermill publisher and subscribers as a driver
// transport, so a team can bring a Watermill adapter msgkit does not ship.
// newSubscriber returns a subscriber in the named consumer group (it is
// also called with a reply topic's name, for request/reply). caps is what
// the pair guarantees: declare only what holds, and run the conformance
// suite on the result to check it. Close closes pub.
func WatermillTransport(pub message.Publisher, newSubscriber func(group string) (message.Subscriber, error), caps Capabilities) driver.Transport {
	return &watermillTransport{pub: pub, newSub: newSubscriber, caps: caps}
}

// DefaultPublishTimeout bounds a publish through a wrapped Watermill
// publisher whose context has no deadline.
const DefaultPublishTimeout = 30 * time.Second

type watermillTransport struct {
	pub    message.Publisher
	newSub func(group string) (message.Subscriber, error)
	caps   Capabilities
}

func (t *watermillTransport) Capabilities() Capabilities { return t.caps }

// SendOptions: a Watermill publisher's Publish takes no context, so a
// publish whose context has no deadline gets DefaultPublishTimeout for its
// retries.
func (t *watermillTransport) SendOptions() driver.SendOptions {
	return driver.SendOptions{Timeout: DefaultPublishTimeout}
}

func (t *watermillTransport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	wms := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		wm := message.NewMessage(m.ID, m.Payload)
		for k, v := range m.Metadata {
			wm.Metadata[k] = v
		}
		wm.SetContext(ctx)
		wms[i] = wm
	}
	return t.pub.Publish(topic, wms...)
}

func (t *watermillTransport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	return t.open(ctx, topic, group)
}

func (t *watermillTransport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	if !t.caps.RequestReply {
		return nil, ErrNoRequestReply
	}
	return t.open(ctx, topic, topic)
}

// RemoveGroup is not supported: Watermill's interfaces have no way to
// delete a consumer group.
func (t *watermillTransport) RemoveGroup(context.Context, string, string) error {
	return fmt.Errorf("a Watermill publisher and subscriber cannot remove consumer groups: %w", errors.ErrUnsupported)
}

func (t *watermillTransport) open(ctx context.Context, topic, group string) (driver.Subscription, error) {
	sub, err := t.newSub(group)
	if err != nil {
		return nil, err
	}
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &watermillSubscription{sub: sub, topic: topic, ctx: subCtx, cancel: cancel, merged: make(chan *message.Message)}
	if err := s.addMember(); err != nil {
		cancel()
		_ = sub.Close()
		return nil, err
	}
	return s, nil
}

func (t *watermillTransport) IsRetryable(error) bool { return false }

// As reaches the wrapped publisher: target may be a *message.Publisher.
func (t *watermillTransport) As(target any) bool {
	if p, ok := target.(*message.Publisher); ok {
		*p = t.pub
		return true
	}
	return false
}

func (t *watermillTransport) Close() error { return t.pub.Close() }

// watermillSubscription reads the channels of one or more Subscribe calls
// on a Watermill subscriber; the AckID of a message is the
// *message.Message. A Watermill subscription hands out its next message
// only once the last is settled, so each Subscribe call is one member: a
// new one joins whenever every member holds an unsettled message and the
// engine asks for more (one per handler, and one to have the next message
// ready), up to maxWatermillMembers.
type watermillSubscription struct {
	sub    message.Subscriber
	topic  string
	ctx    context.Context // the members' lifetime; cancelled by Close
	cancel context.CancelFunc
	merged chan *message.Message

	mu          sync.Mutex
	members     int
	live        int // members whose channel is still open
	outstanding int // received, not settled
	ended       bool
}

const maxWatermillMembers = 64

// addMember subscribes once more and forwards the channel to merged.
func (s *watermillSubscription) addMember() error {
	ch, err := s.sub.Subscribe(s.ctx, s.topic)
	if err != nil {
		return err
	}
	s.members++
	s.live++
	go func() {
		for wm := range ch {
			select {
			case s.merged <- wm:
			case <-s.ctx.Done():
				wm.Nack()
			}
		}
		s.mu.Lock()
		s.live--
		if s.live == 0 {
			s.ended = true
			close(s.merged)
		}
		s.mu.Unlock()
	}()
	return nil
}

func (s *watermillSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	if !s.ended && s.outstanding >= s.members && s.members < maxWatermillMembers && s.ctx.Err() == nil {
		if err := s.addMember(); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	s.mu.Unlock()
	var out []*driver.Message
	add := func(wm *message.Message) {
		md := make(map[string]string, len(wm.Metadata))
		for k, v := range wm.Metadata {
			md[k] = v
		}
		out = append(out, &driver.Message{ID: wm.UUID, Payload: wm.Payload, Metadata: md, OrderingKey: md[KeyOrderingKey], AckID: wm})
	}
	defer func() {
		s.mu.Lock()
		s.outstanding += len(out)
		s.mu.Unlock()
	}()
	select {
	case wm, ok := <-s.merged:
		if !ok {
			<-ctx.Done() // every member's channel closed: nothing more comes
			return nil, ctx.Err()
		}
		add(wm)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < max {
		select {
		case wm, ok := <-s.merged:
			if !ok {
				return out, nil
			}
			add(wm)
		default:
			return out, nil
		}
	}
	return out, nil
}

func (s *watermillSubscription) settled(n int) {
	s.mu.Lock()
	s.outstanding -= n
	s.mu.Unlock()
}

func (s *watermillSubscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	defer s.settled(len(ids))
	for _, id := range ids {
		id.(*message.Message).Ack()
	}
	return nil
}

func (s *watermillSubscription) CanNack() bool { return true }

func (s *watermillSubscription) SendNacks(_ context.Context, ids []driver.AckID, _ time.Duration) error {
	defer s.settled(len(ids))
	for _, id := range ids {
		id.(*message.Message).Nack()
	}
	return nil
}

func (s *watermillSubscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }

// Options: a Watermill subscription hands out its next message only once
// the last is settled, so acks go at once and a batch is one message.
func (s *watermillSubscription) Options() driver.Options {
	return driver.Options{MaxBatch: 1, AckBatch: 1}
}

func (s *watermillSubscription) Close() error {
	s.cancel()
	return s.sub.Close()
}
