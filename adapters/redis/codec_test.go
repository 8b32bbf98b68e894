package redis

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/msgkit/msgkit/sdk/driver"
)

// asRead turns XADD values into what XREADGROUP returns: every value a
// string.
func asRead(values []string) map[string]any {
	out := map[string]any{}
	for i := 0; i < len(values); i += 2 {
		out[values[i]] = strings.Clone(values[i+1])
	}
	return out
}

// Both layouts carry any id, payload and metadata exactly.
func FuzzLayoutsRoundTrip(f *testing.F) {
	f.Add("id-1", []byte{0, 0xff}, "city", "Zürich")
	f.Add("", []byte{}, "", "")
	f.Fuzz(func(t *testing.T, id string, payload []byte, k, v string) {
		if id == "" {
			id = "x"
		}
		sent := &driver.Message{ID: id, Payload: payload, Metadata: map[string]string{k: v}}
		wm, err := encodeWatermill(sent)
		if err != nil {
			t.Fatal(err)
		}
		for name, values := range map[string][]string{"msgkit": encode(sent), "watermill": wm} {
			var got driver.Message
			decode(&got, "1-1", asRead(values))
			if got.ID != id || !bytes.Equal(got.Payload, payload) || !maps.Equal(got.Metadata, sent.Metadata) {
				t.Fatalf("%s layout: sent %q %q %v, got %q %q %v", name, id, payload, sent.Metadata, got.ID, got.Payload, got.Metadata)
			}
		}
	})
}

// Metadata that is not a msgpack map of strings is kept as it came, so the
// entry is still delivered and nothing is dropped.
func TestWatermillLayoutWithForeignMetadataIsKept(t *testing.T) {
	var got driver.Message
	decode(&got, "1-1", map[string]any{fieldWatermillID: "w1", fieldPayload: "p", fieldWatermillMetadata: "not msgpack \xc1"})
	if got.ID != "w1" || string(got.Payload) != "p" || got.Metadata[fieldWatermillMetadata] != "not msgpack \xc1" {
		t.Fatalf("got %+v", got)
	}
}

// In both layouts, each entry of a batch whose messages share metadata
// maps reads back as its own message: its id, its payload, the metadata
// of its map.
func TestEntryFieldsOfABatchThatSharesMetadata(t *testing.T) {
	shared := map[string]string{"ce-time": "2026-12-07T12:00:00Z", "ce-type": "order.created"}
	msgs := []*driver.Message{
		{ID: "m1", Payload: []byte("1"), Metadata: shared},
		{ID: "m2", Payload: []byte("2"), Metadata: shared},
		{ID: "m3", Payload: []byte("3"), Metadata: map[string]string{"ce-time": "2026-12-07T12:00:00Z", "tenant": "acme"}},
		{ID: "m4", Payload: []byte("4"), Metadata: shared},
		{ID: "m5", Payload: []byte{}, Metadata: shared},
		{ID: "m6", Payload: []byte("6"), Metadata: map[string]string{}},
		{ID: "m7", Payload: []byte("7"), Metadata: map[string]string{}},
	}
	for _, watermill := range []bool{false, true} {
		fields := entryFields{watermill: watermill}
		for i, m := range msgs {
			values, err := fields.of(m)
			if err != nil {
				t.Fatal(err)
			}
			var got driver.Message
			decode(&got, "1-1", asRead(values))
			if got.ID != m.ID || !bytes.Equal(got.Payload, m.Payload) || !maps.Equal(got.Metadata, m.Metadata) {
				t.Errorf("watermill layout %v, message %d: sent %q %q %v, read back %q %q %v",
					watermill, i, m.ID, m.Payload, m.Metadata, got.ID, got.Payload, got.Metadata)
			}
		}
	}
}
