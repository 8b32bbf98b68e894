package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// faultyTransport wraps a memory transport and injects one fault, so the
// suite can be shown to catch it. With fault "" it must be transparent.
type faultyTransport struct {
	driver.Transport
	fault string
	dead  atomic.Bool // "long-name-kills-connection" after a long topic
}

func openFaulty(t *testing.T, fault string) (driver.Transport, error) {
	inner, err := memory.Driver{}.Open(context.Background(), sdk.Config{URL: "memory://faulty-" + strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())})
	if err != nil {
		return nil, err
	}
	return &faultyTransport{Transport: inner, fault: fault}, nil
}

// Capabilities: with "claims-group-start" the driver declares it chooses
// where a new group starts, which the memory broker does not.
func (f *faultyTransport) Capabilities() driver.Capabilities {
	c := f.Transport.Capabilities()
	if f.fault == "claims-group-start" {
		c.ChoosesGroupStart = true
	}
	if f.fault == "restart-loses-messages" {
		c.Persistent = true
	}
	return c
}

// RemoveGroup: with "remove-keeps-group" the driver declares RemovesGroups
// (as memory does) but leaves the group in place.
func (f *faultyTransport) RemoveGroup(ctx context.Context, topic, group string) error {
	if f.fault == "remove-keeps-group" {
		return nil
	}
	return f.Transport.RemoveGroup(ctx, topic, group)
}

// longName is past every broker's name limit.
const longName = 255

func (f *faultyTransport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if err := f.nameFault(topic); err != nil {
		if errors.Is(err, errNowhere) {
			return nil
		}
		return err
	}
	out := make([]*driver.Message, 0, 2*len(msgs))
	for _, m := range msgs {
		c := *m
		switch f.fault {
		case "drop-metadata":
			c.Metadata = map[string]string{}
		case "fold-key-case":
			// As HTTP-like headers do: keys differing in case become one.
			c.Metadata = map[string]string{}
			for k, v := range m.Metadata {
				c.Metadata[strings.ToLower(k)] = v
			}
		case "move-metadata-out":
			// As a driver that takes the entries it sends out of the map
			// it was given, which messages of one batch may share.
			c.Metadata = map[string]string{}
			for k, v := range m.Metadata {
				c.Metadata[k] = v
				delete(m.Metadata, k)
			}
		case "mangle-binary":
			c.Payload = []byte(strings.ToValidUTF8(string(m.Payload), "\uFFFD"))
		case "truncate-large":
			if len(c.Payload) > 1<<20 {
				c.Payload = c.Payload[:1<<20]
			}
		case "duplicate":
			d := c
			d.Metadata = map[string]string{}
			for k, v := range c.Metadata {
				d.Metadata[k] = v
			}
			out = append(out, &d)
		}
		out = append(out, &c)
	}
	return f.Transport.SendBatch(ctx, topic, out)
}

// Close: with "close-keeps-subscriptions" closing the transport leaves its
// subscriptions running, as a driver that forgets to track them does.
func (f *faultyTransport) Close() error {
	if f.fault == "close-keeps-subscriptions" {
		return nil
	}
	return f.Transport.Close()
}

// errNowhere makes SendBatch report success without sending.
var errNowhere = errors.New("faulty: sent nowhere")

// nameFault: with "odd-name-goes-nowhere" a publish to a topic holding a
// line break succeeds and sends nothing, as RabbitMQ did with a name it
// declared without the control character; with "long-name-kills-connection" a long topic fails, and so
// does every publish after it, as a connection the server closed over one
// request would; with "long-name-error-repeats-it" the error about a long
// topic holds it whole, twice.
func (f *faultyTransport) nameFault(topic string) error {
	switch {
	case f.fault == "long-name-kills-connection" && len(topic) > longName:
		f.dead.Store(true)
		return errors.New("faulty: the server closed the connection")
	case f.fault == "long-name-error-repeats-it" && len(topic) > longName:
		return fmt.Errorf("faulty: topic %q is too long: %q", topic, topic)
	case f.fault == "odd-name-goes-nowhere" && strings.Contains(topic, "\n"):
		return errNowhere
	case f.dead.Load():
		return errors.New("faulty: connection closed")
	}
	return nil
}

func (f *faultyTransport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if err := f.nameFault(topic); err != nil && !errors.Is(err, errNowhere) {
		return nil, err
	}
	inner, err := f.Transport.OpenSubscription(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	subscribedTopics.Store(topic, f)
	return &faultySubscription{Subscription: inner, fault: f.fault}, nil
}

// subscribedTopics maps each topic subscribed to the transport that
// subscribed, for injectEvent.
var subscribedTopics sync.Map

// foreignKey marks a message injectEvent sent: the fixture's subscriptions
// deliver it as a foreign producer's, without the key and with an id of
// their own making.
const foreignKey = "x-fixture-foreign"

// injectEvent is the fixture's Harness.InjectEvent: it sends event, as a
// CloudEvents structured-mode message, through the transport subscribed to
// topic.
func injectEvent(ctx context.Context, topic string, event []byte) error {
	f, ok := subscribedTopics.Load(topic)
	if !ok {
		return fmt.Errorf("fixture: no transport has subscribed to %q", topic)
	}
	return f.(*faultyTransport).Transport.SendBatch(ctx, topic, []*driver.Message{{ID: uuid.NewString(), Payload: event,
		Metadata: map[string]string{sdk.KeyContentType: "application/cloudevents+json", foreignKey: "1"}}})
}

type faultySubscription struct {
	driver.Subscription
	fault string
	nacks atomic.Int32
}

func (s *faultySubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if s.fault == "receive-ignores-context" {
		// Waits for a message however long it takes, as a driver that drops
		// the context on its way to the broker call does.
		for {
			msgs, err := s.Subscription.ReceiveBatch(context.Background(), max)
			if len(msgs) > 0 || err != nil {
				return msgs, err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	msgs, err := s.Subscription.ReceiveBatch(ctx, max)
	for _, m := range msgs {
		if _, foreign := m.Metadata[foreignKey]; foreign {
			// An id made from the message's place on the broker, marked as
			// such; with "unmarked-derived-id" the driver forgets the mark.
			delete(m.Metadata, foreignKey)
			m.ID, m.DerivedID = "offset-"+m.ID, s.fault != "unmarked-derived-id"
		}
	}
	if s.fault == "restart-loses-messages" && restarted.Load() {
		// What was stored before the "restart" is gone, as on a broker
		// that claims Persistent and keeps messages in memory.
		kept := msgs[:0]
		var lost []driver.AckID
		for _, m := range msgs {
			if strings.HasPrefix(string(m.Payload), "before-restart") {
				lost = append(lost, m.AckID)
			} else {
				kept = append(kept, m)
			}
		}
		if len(lost) > 0 {
			_ = s.Subscription.SendAcks(ctx, lost)
		}
		msgs = kept
	}
	return msgs, err
}

// restarted is set by the fixture's Harness.Restart with the fault
// "restart-loses-messages".
var restarted atomic.Bool

// Options: with "ignores-nack-delay" the driver claims its broker waits a
// nack's delay (DelaysNacks) while the memory broker redelivers at once.
func (s *faultySubscription) Options() driver.Options {
	o := s.Subscription.Options()
	if s.fault == "ignores-nack-delay" {
		o.DelaysNacks = true
	}
	return o
}

func (s *faultySubscription) SendNacks(ctx context.Context, ids []driver.AckID, delay time.Duration) error {
	if s.fault == "never-redeliver" || (s.fault == "drop-after-5-nacks" && s.nacks.Add(int32(len(ids))) > 5) {
		return s.Subscription.SendAcks(ctx, ids)
	}
	return s.Subscription.SendNacks(ctx, ids, delay)
}
