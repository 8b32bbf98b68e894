package sdk

import (
	"maps"
	"reflect"
	"testing"
)

// The one-pass read of a received message's attributes gives what the
// long way (rename, unpack, then look each attribute up) gives, for any
// metadata.
func FuzzFillReceivedMatchesTheLongWay(f *testing.F) {
	f.Add("ce-type", "order.created", "ce-time", "2026-12-06T01:02:03.000000004Z", []byte("p"))
	f.Add("ce_type", "x", "content-type", "application/cloudevents+json", []byte(`{"specversion":"1.0","type":"t","data":"d"}`))
	f.Add("ce-datacontenttype", "text/plain", "ordering-key", "k", []byte{})
	f.Add("cloudEvents:source", "s", "ce-source", "t", []byte("x"))
	f.Add("ce_specversion", "1.0", "ce_type", "t", []byte("x"))
	f.Add("ce-specversion", "1.0", "ce-datacontenttype", "text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, payload []byte) {
		md := map[string]string{k1: v1, k2: v2, KeyCorrelationID: "c"}
		var fast, long Message
		fillReceived(&fast, "id", payload, maps.Clone(md))
		longWay(&long, "id", payload, maps.Clone(md))
		if !reflect.DeepEqual(fast, long) {
			t.Fatalf("metadata %q:\none pass %+v\nlong way %+v", md, fast, long)
		}
	})
}

// longWay reads a received message by renaming and unpacking every
// message's attributes, then looking each one up.
func longWay(m *Message, id string, payload []byte, md map[string]string) {
	cloudEventsNames(md)
	payload = cloudEventsStructured(payload, md)
	*m = Message{ID: id, Payload: payload, Metadata: md, EventType: md[KeyEventType], Source: md[KeySource],
		ContentType: md[KeyContentType], CorrelationID: md[KeyCorrelationID], CausationID: md[KeyCausationID], OrderingKey: md[KeyOrderingKey]}
	if ts := md[KeyTime]; ts != "" {
		if t, err := parseTime(ts); err == nil {
			m.Time = t
		}
	}
}
