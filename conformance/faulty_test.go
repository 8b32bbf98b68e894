package conformance_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
)

// faultyTransport wraps a memory transport and injects one fault, so the
// suite can be shown to catch it. With fault "" it must be transparent.
type faultyTransport struct {
	sdk.Transport
	fault string
	pub   *faultyPublisher
}

func openFaulty(t *testing.T, fault string) (sdk.Transport, error) {
	inner, err := memory.Driver{}.Open(context.Background(), sdk.Config{URL: "memory://faulty-" + strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())})
	if err != nil {
		return nil, err
	}
	return &faultyTransport{Transport: inner, fault: fault, pub: &faultyPublisher{Publisher: inner.Publisher(), fault: fault}}, nil
}

func (f *faultyTransport) Publisher() message.Publisher { return f.pub }

func (f *faultyTransport) Subscriber(group string) (message.Subscriber, error) {
	inner, err := f.Transport.Subscriber(group)
	if err != nil {
		return nil, err
	}
	return &faultySubscriber{inner: inner, fault: f.fault, done: make(chan struct{})}, nil
}

type faultyPublisher struct {
	message.Publisher
	fault string
}

func (p *faultyPublisher) Publish(topic string, msgs ...*message.Message) error {
	out := make([]*message.Message, 0, 2*len(msgs))
	for _, m := range msgs {
		c := message.NewMessage(m.UUID, m.Payload)
		for k, v := range m.Metadata {
			c.Metadata[k] = v
		}
		switch p.fault {
		case "drop-metadata":
			c.Metadata = message.Metadata{}
		case "mangle-binary":
			c.Payload = []byte(strings.ToValidUTF8(string(m.Payload), "\uFFFD"))
		case "duplicate":
			out = append(out, c.Copy())
		}
		out = append(out, c)
	}
	return p.Publisher.Publish(topic, out...)
}

type faultySubscriber struct {
	inner message.Subscriber
	fault string
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func (s *faultySubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.inner.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go s.forward(in, out)
	return out, nil
}

func (s *faultySubscriber) forward(in <-chan *message.Message, out chan *message.Message) {
	defer s.wg.Done()
	if s.fault != "channel-never-closes" {
		defer close(out)
	}
	for m := range in {
		c := m.Copy()
		c.SetContext(m.Context())
		select {
		case out <- c:
		case <-s.done:
			m.Nack()
			continue
		}
		select {
		case <-c.Acked():
			m.Ack()
		case <-c.Nacked():
			if s.fault == "never-redeliver" {
				m.Ack()
			} else {
				m.Nack()
			}
		case <-s.done:
			// Closing right after the handler acked: both cases are ready,
			// and select picks at random. An ack must not turn into a nack.
			select {
			case <-c.Acked():
				m.Ack()
			default:
				m.Nack()
			}
		}
	}
}

func (s *faultySubscriber) Close() error {
	s.once.Do(func() { close(s.done) })
	err := s.inner.Close()
	s.wg.Wait()
	return err
}
