package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Transport is a driver transport with the Watermill publisher and
// subscribers sdk builds on it, for adapter tests written against
// Watermill's API.
type Transport struct {
	driver.Transport
	pub message.Publisher
}

// Watermill wraps the result of a driver's Open.
func Watermill(tr driver.Transport, err error) (*Transport, error) {
	if err != nil {
		return nil, err
	}
	return &Transport{Transport: tr, pub: sdk.NewWatermillPublisher(tr)}, nil
}

// Publisher returns the transport's Watermill publisher.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a Watermill subscriber in group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	return sdk.NewWatermillSubscriber(t.Transport, group, nil), nil
}

// RoundTrip publishes a message on tr through an sdk.Client and fails the
// test unless a subscriber of a new group gets it, id and payload intact.
// It closes the client, and with it tr.
func RoundTrip(t testing.TB, tr driver.Transport, topic string) {
	t.Helper()
	c := sdk.NewClient(tr)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ClientRoundTrip(t, c, topic)
}

// ClientRoundTrip publishes a message through c and fails the test unless
// a subscriber of a new group gets it, id and payload intact.
func ClientRoundTrip(t testing.TB, c *sdk.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(ctx, topic, "roundtrip", func(_ context.Context, m *sdk.Message) error {
		select {
		case got <- m:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sent := sdk.NewMessage([]byte("round trip"))
	if err := c.Publish(ctx, topic, sent); err != nil {
		t.Fatal(err)
	}
	m := Await(t, got, "the message")
	if m.ID != sent.ID || string(m.Payload) != "round trip" {
		t.Fatalf("got message %s %q, want %s %q", m.ID, m.Payload, sent.ID, "round trip")
	}
}

// RunRouter runs sub's messages of topic through a Watermill router, as a
// Watermill service does, and returns a channel of copies of the messages
// its handler acked. The router stops when the test ends.
func RunRouter(t testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	handled := make(chan *message.Message, 16)
	router.AddConsumerHandler("interop", topic, sub, func(m *message.Message) error {
		handled <- m.Copy()
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- router.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = router.Close()
		Await(t, done, "Watermill's router to stop")
	})
	Await(t, router.Running(), "Watermill's router to start")
	return handled
}
