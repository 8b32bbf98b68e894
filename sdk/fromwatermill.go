package sdk

import (
	"context"
	"fmt"
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

type watermillTransport struct {
	pub    message.Publisher
	newSub func(group string) (message.Subscriber, error)
	caps   Capabilities
}

func (t *watermillTransport) Capabilities() Capabilities { return t.caps }

func (t *watermillTransport) SendOptions() driver.SendOptions { return driver.SendOptions{} }

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

func (t *watermillTransport) open(ctx context.Context, topic, group string) (driver.Subscription, error) {
	sub, err := t.newSub(group)
	if err != nil {
		return nil, err
	}
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ch, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		cancel()
		_ = sub.Close()
		return nil, err
	}
	return &watermillSubscription{sub: sub, ch: ch, cancel: cancel}, nil
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

// watermillSubscription reads a Watermill subscription's channel; the
// AckID of a message is the *message.Message.
type watermillSubscription struct {
	sub    message.Subscriber
	ch     <-chan *message.Message
	cancel context.CancelFunc
	ended  bool // the channel closed; said once, then ReceiveBatch waits for its context
}

func (s *watermillSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	var out []*driver.Message
	add := func(wm *message.Message) {
		md := make(map[string]string, len(wm.Metadata))
		for k, v := range wm.Metadata {
			md[k] = v
		}
		out = append(out, &driver.Message{ID: wm.UUID, Payload: wm.Payload, Metadata: md, OrderingKey: md[KeyOrderingKey], AckID: wm})
	}
	if s.ended {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	select {
	case wm, ok := <-s.ch:
		if !ok {
			s.ended = true
			return nil, fmt.Errorf("the Watermill subscriber closed its channel: this subscription receives nothing more")
		}
		add(wm)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(out) < max {
		select {
		case wm, ok := <-s.ch:
			if !ok {
				s.ended = true
				return out, nil
			}
			add(wm)
		default:
			return out, nil
		}
	}
	return out, nil
}

func (s *watermillSubscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		id.(*message.Message).Ack()
	}
	return nil
}

func (s *watermillSubscription) CanNack() bool { return true }

func (s *watermillSubscription) SendNacks(_ context.Context, ids []driver.AckID, _ time.Duration) error {
	for _, id := range ids {
		id.(*message.Message).Nack()
	}
	return nil
}

func (s *watermillSubscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }

func (s *watermillSubscription) Options() driver.Options { return driver.Options{MaxBatch: 1} }

func (s *watermillSubscription) Close() error {
	s.cancel()
	return s.sub.Close()
}
