package sdk

import (
	"maps"
	"sync"
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

// The ids Publish gives messages are distinct random (version 4, RFC 4122)
// UUIDs, also from publishers running at once and across the reads of
// randomness that each serve 64 ids; a message's own id is kept.
func TestNewIDsAreDistinctVersion4UUIDs(t *testing.T) {
	const publishers, each = 8, 500
	ids := make([][]string, publishers)
	var wg sync.WaitGroup
	for p := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var call publishCall
			for range each {
				ids[p] = append(ids[p], call.outgoing(&Message{}, time.Now()).ID())
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, list := range ids {
		for _, id := range list {
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
				t.Fatalf("id %q is not a version 4 RFC 4122 UUID (%v)", id, err)
			}
			if seen[id] {
				t.Fatalf("id %q given twice", id)
			}
			seen[id] = true
		}
	}
	var call publishCall
	if id := call.outgoing(&Message{ID: "given"}, time.Now()).ID(); id != "given" {
		t.Fatalf("a message's own id must be kept, got %q", id)
	}
}
