package sdk

import (
	"maps"
	"testing"
	"time"
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
