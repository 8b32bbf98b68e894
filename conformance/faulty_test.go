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
	// The inner subscription gets a context of its own, cancelled only once
	// forward has settled the message it holds: cancelling it earlier would
	// let the inner broker requeue a message whose handler already acked it
	// before forward has passed the ack on.
	innerCtx, cancelInner := context.WithCancel(context.Background())
	in, err := s.inner.Subscribe(innerCtx, topic)
	if err != nil {
		cancelInner()
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go s.forward(ctx, in, out, cancelInner)
	return out, nil
}

func (s *faultySubscriber) forward(ctx context.Context, in <-chan *message.Message, out chan *message.Message, cancelInner context.CancelFunc) {
	defer s.wg.Done()
	defer cancelInner()
	if s.fault != "channel-never-closes" {
		defer close(out)
	}
	for {
		var m *message.Message
		select {
		case got, ok := <-in:
			if !ok {
				return
			}
			m = got
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		c := m.Copy()
		c.SetContext(m.Context())
		select {
		case out <- c:
		case <-ctx.Done():
			m.Nack()
			return
		case <-s.done:
			m.Nack()
			return
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
		case <-ctx.Done():
			s.settle(m, c)
			return
		case <-s.done:
			s.settle(m, c)
			return
		}
	}
}

// settle passes on the verdict the handler gave before the subscription
// ended. Both cases of the select above may have been ready: an ack must
// not turn into a nack.
func (s *faultySubscriber) settle(m, c *message.Message) {
	select {
	case <-c.Acked():
		m.Ack()
	default:
		m.Nack()
	}
}

func (s *faultySubscriber) Close() error {
	s.once.Do(func() { close(s.done) })
	s.wg.Wait() // forward settles what it holds before the inner side closes
	return s.inner.Close()
}
