package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// derivedIDs is a memory transport whose subscriptions deliver every
// message as one that arrived without an id: "derived-" and its id, marked
// DerivedID, as an adapter marks a Kafka offset or a stream entry id.
type derivedIDs struct{ *memory.Transport }

func (d derivedIDs) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	s, err := d.Transport.OpenSubscription(ctx, topic, group)
	return derivedSubscription{s}, err
}

type derivedSubscription struct{ driver.Subscription }

func (s derivedSubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	msgs, err := s.Subscription.ReceiveBatch(ctx, max)
	for _, m := range msgs {
		m.ID, m.DerivedID = "derived-"+m.ID, true
	}
	return msgs, err
}

// A message that carried no id of its own is handled under the id of the
// CloudEvents event it holds, in binary mode under any binding's names or
// in structured mode, on the Client's and on the Watermill subscriber's
// path alike; one that holds no event (or no id a CloudEvents event can
// have) keeps the adapter's id.
func TestEventIDIdentifiesAMessageWithoutItsOwn(t *testing.T) {
	structured := func(body string) map[string]string {
		return map[string]string{sdk.KeyContentType: "application/cloudevents+json", "body": body}
	}
	for _, c := range []struct {
		name   string
		md     map[string]string
		wantID string // "" for the adapter's id
	}{
		{"structured", structured(`{"specversion":"1.0","id":"evt-1","type":"t","source":"/s","data":{"a":1}}`), "evt-1"},
		{"binary, msgkit's names", map[string]string{"ce-specversion": "1.0", "ce-id": "evt-2"}, "evt-2"},
		{"binary, Kafka binding", map[string]string{"ce_specversion": "1.0", "ce_id": "evt-3"}, "evt-3"},
		{"binary, AMQP binding", map[string]string{"cloudEvents:specversion": "1.0", "cloudEvents:id": "evt-4"}, "evt-4"},
		{"ce_id without specversion", map[string]string{"ce_id": "not-an-event"}, ""},
		{"structured, numeric id", structured(`{"specversion":"1.0","id":5,"type":"t","source":"/s"}`), ""},
		{"structured, no specversion", structured(`{"id":"evt-6"}`), ""},
		{"structured, not JSON", structured(`not json`), ""},
		{"no event", map[string]string{"tenant": "acme"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c1 := sdk.NewClient(derivedIDs{memory.New()}, quiet)
			defer c1.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan string, 1)
			if _, err := c1.Subscribe(ctx, "t", "client", func(_ context.Context, m *sdk.Message) error {
				got <- m.ID
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			sub, err := c1.Subscriber("watermill")
			if err != nil {
				t.Fatal(err)
			}
			wms, err := sub.Subscribe(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			m := sdk.NewMessage(nil)
			for k, v := range c.md {
				if k == "body" {
					m.Payload = []byte(v)
				} else {
					m.Set(k, v)
				}
			}
			if err := c1.Publish(ctx, "t", m); err != nil {
				t.Fatal(err)
			}
			want := c.wantID
			if want == "" {
				want = "derived-" + m.ID
			}
			if id := testenv.Await(t, got, "the Client's handler"); id != want {
				t.Errorf("Client handler: id %q, want %q", id, want)
			}
			wm := testenv.AwaitMessage(t, wms, "the Watermill subscriber")
			wm.Ack()
			if wm.UUID != want {
				t.Errorf("Watermill subscriber: UUID %q, want %q", wm.UUID, want)
			}
		})
	}
}
