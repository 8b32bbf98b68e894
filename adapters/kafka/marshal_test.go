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
		{ID: "t-2-9", Payload: []byte{}, Metadata: map[string]string{}},
		{ID: "ev-3", Payload: []byte("c"), Metadata: map[string]string{"ce_id": "ev-3", "x": "three\x00bytes", sdk.KeyOrderingKey: "k"}},
		{ID: "id-4", Payload: []byte("d"), Metadata: map[string]string{"y": "four"}},
	}
	got := make([]driver.Message, len(records))
	fromRecords(got, records)
	for i := range want {
		g, w := got[i], want[i]
		if g.ID != w.ID || string(g.Payload) != string(w.Payload) || g.Payload == nil || !maps.Equal(g.Metadata, w.Metadata) {
			t.Errorf("record %d: got id %q payload %q metadata %q, want id %q payload %q metadata %q",
				i, g.ID, g.Payload, g.Metadata, w.ID, w.Payload, w.Metadata)
		}
	}
}
