package kafka

import (
	"maps"
	"testing"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// A batch's header values share one string; each message still gets
// exactly its own id and values, whatever the others carry.
func TestFromRecordsCutsEachMessagesOwnValues(t *testing.T) {
	h := func(kv ...string) []kgo.RecordHeader {
		var out []kgo.RecordHeader
		for i := 0; i < len(kv); i += 2 {
			out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
		}
		return out
	}
	records := []*kgo.Record{
		{Topic: "t", Partition: 1, Offset: 7, Value: []byte("a"), Headers: h(wkafka.UUIDHeaderKey, "id-1", "x", "one", "empty", "")},
		{Topic: "t", Partition: 2, Offset: 9, Value: nil},
		{Topic: "t", Partition: 0, Offset: 3, Key: []byte("k"), Value: []byte("c"), Headers: h("ce_id", "ev-3", "x", "three\x00bytes")},
		{Topic: "t", Partition: 0, Offset: 4, Value: []byte("d"), Headers: h("y", "four", wkafka.UUIDHeaderKey, "id-4")},
	}
	want := []driver.Message{
		{ID: "id-1", Payload: []byte("a"), Metadata: map[string]string{"x": "one", "empty": ""}},
		{ID: "t-2-9", DerivedID: true, Payload: []byte{}, Metadata: map[string]string{}},
		{ID: "t-0-3", DerivedID: true, Payload: []byte("c"), Metadata: map[string]string{"ce_id": "ev-3", "x": "three\x00bytes", sdk.KeyOrderingKey: "k"}},
		{ID: "id-4", Payload: []byte("d"), Metadata: map[string]string{"y": "four"}},
	}
	got := make([]driver.Message, len(records))
	fromRecords(got, records)
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.DerivedID != w.DerivedID || string(g.Payload) != string(w.Payload) || g.Payload == nil || !maps.Equal(g.Metadata, w.Metadata) {
			t.Errorf("record %d: got id %q (derived %v) payload %q metadata %q, want id %q (derived %v) payload %q metadata %q",
				i, g.ID, g.DerivedID, g.Payload, g.Metadata, w.ID, w.DerivedID, w.Payload, w.Metadata)
		}
	}
}

// Messages that share a metadata map share its encoded headers; each
// record still carries its own id first and exactly the metadata of its
// message.
func TestToRecordsEncodesASharedMetadataMapOnce(t *testing.T) {
	shared := map[string]string{sdk.KeyTime: "2026-12-07T12:00:00Z", sdk.KeyEventType: "order.created"}
	own := map[string]string{sdk.KeyTime: "2026-12-07T12:00:00Z", "tenant": "acme"}
	msgs := []*driver.Message{
		{ID: "m1", Payload: []byte("1"), Metadata: shared},
		{ID: "m2", Payload: []byte("2"), Metadata: shared},
		{ID: "m3", Payload: []byte("3"), Metadata: own},
		{ID: "m4", Payload: []byte("4"), Metadata: shared, OrderingKey: "k"},
		{ID: "m5", Payload: []byte("5"), Metadata: shared},
		{ID: "m6", Payload: []byte("6"), Metadata: map[string]string{}},
		{ID: "m7", Payload: []byte("7"), Metadata: nil},
	}
	records := toRecords("t", msgs)
	for i, r := range records {
		m := msgs[i]
		if len(r.Headers) == 0 || r.Headers[0].Key != wkafka.UUIDHeaderKey || string(r.Headers[0].Value) != m.ID {
			t.Fatalf("record %d: the first header must be the id %q: %v", i, m.ID, r.Headers)
		}
		got := map[string]string{}
		for _, h := range r.Headers[1:] {
			got[h.Key] = string(h.Value)
		}
		if len(got) != len(r.Headers)-1 || !maps.Equal(got, m.Metadata) && len(m.Metadata)+len(got) > 0 {
			t.Errorf("record %d: headers %v, want the id and %v", i, r.Headers, m.Metadata)
		}
		if string(r.Value) != string(m.Payload) || string(r.Key) != m.OrderingKey {
			t.Errorf("record %d: value %q key %q, want %q and %q", i, r.Value, r.Key, m.Payload, m.OrderingKey)
		}
	}
	// The records' headers do not overlap: one record's headers grown by
	// franz-go or a hook never reach another's.
	for i := 1; i < len(records); i++ {
		if prev := records[i-1].Headers; cap(prev) != len(prev) {
			t.Errorf("record %d: its headers have room past their end (%d of %d): an append would write over the next record's", i-1, len(prev), cap(prev))
		}
	}
}
