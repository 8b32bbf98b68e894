package sdk

import (
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestOutgoingYieldsWhatToWatermillWrites(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 42, time.UTC)
	cases := map[string]*Message{
		"bare": {ID: "m1", Payload: []byte("x")},
		"standard fields": {ID: "m2", EventType: "order.created", Source: "orders", ContentType: "application/json",
			CorrelationID: "c", CausationID: "k", OrderingKey: "o-1", Time: now.Add(-time.Hour)},
		"fields replace entries of the same name": {ID: "m3", EventType: "from.field", Metadata: map[string]string{
			KeyEventType: "from.metadata", KeyTime: "yesterday", KeySource: "kept: no Source field", "tenant": "acme"}},
		"ordering key only in metadata": {ID: "m4", Metadata: map[string]string{KeyOrderingKey: "o-2"}},
		"no id":                         {Payload: []byte{}},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			o := NewOutgoing(m, now)
			wm := m.ToWatermill(now)
			got := map[string]string{}
			o.Metadata(func(k, v string) bool {
				if _, dup := got[k]; dup {
					t.Fatalf("key %q yielded twice", k)
				}
				got[k] = v
				return true
			})
			if !maps.Equal(got, map[string]string(wm.Metadata)) {
				t.Fatalf("Outgoing yields %v, ToWatermill writes %v", got, wm.Metadata)
			}
			if o.MetadataLen() != len(wm.Metadata) {
				t.Fatalf("MetadataLen %d, ToWatermill writes %d entries", o.MetadataLen(), len(wm.Metadata))
			}
			if o.OrderingKey() != wm.Metadata[KeyOrderingKey] {
				t.Fatalf("OrderingKey %q, metadata says %q", o.OrderingKey(), wm.Metadata[KeyOrderingKey])
			}
			if m.ID != "" && o.ID() != m.ID || o.ID() == "" {
				t.Fatalf("ID %q for message id %q", o.ID(), m.ID)
			}
		})
	}
}

func TestOutgoingMetadataStopsWhenTold(t *testing.T) {
	o := NewOutgoing(&Message{EventType: "e", Source: "s", Metadata: map[string]string{"a": "1", "b": "2"}}, time.Now())
	n := 0
	o.Metadata(func(string, string) bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("an iterator must stop when yield returns false: %d calls, want 3", n)
	}
}

// The ids a Publish call gives its messages are distinct random (version
// 4, RFC 4122) UUIDs, whether their randomness was read for the whole call
// or for one message.
func TestNewIDsAreDistinctVersion4UUIDs(t *testing.T) {
	msgs := make([]*Message, 300)
	for i := range msgs {
		msgs[i] = &Message{}
	}
	msgs[7].ID = "given"
	var call publishCall
	call.newIDsFor(msgs)
	if len(call.random) != 16*299 {
		t.Fatalf("randomness for the 299 messages without an id must be read at once, got %d bytes", len(call.random))
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		id := call.outgoing(m, time.Now()).ID()
		if m.ID != "" {
			if id != m.ID {
				t.Fatalf("a message's own id must be kept, got %q", id)
			}
			continue
		}
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %q is not a version 4 RFC 4122 UUID (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("id %q given twice", id)
		}
		seen[id] = true
	}
	if len(call.random) != 0 {
		t.Fatalf("%d bytes of randomness left unused", len(call.random))
	}
}
