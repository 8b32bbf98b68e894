package sdk

import (
	"maps"
	"reflect"
	"testing"
)

// The one-pass read of a received message's attributes gives what the
// long way (rename, unpack, then read) gives, for any metadata.
func FuzzFillReceivedMatchesTheLongWay(f *testing.F) {
	f.Add("ce-type", "order.created", "ce-time", "2026-12-06T01:02:03.000000004Z", []byte("p"))
	f.Add("ce_type", "x", "content-type", "application/cloudevents+json", []byte(`{"specversion":"1.0","type":"t","data":"d"}`))
	f.Add("ce-datacontenttype", "text/plain", "ordering-key", "k", []byte{})
	f.Add("cloudEvents:source", "s", "ce-source", "t", []byte("x"))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, payload []byte) {
		md := map[string]string{k1: v1, k2: v2, KeyCorrelationID: "c"}
		var fast, long Message
		fillReceived(&fast, "id", payload, maps.Clone(md))
		fillForeign(&long, "id", payload, maps.Clone(md))
		if !reflect.DeepEqual(fast, long) {
			t.Fatalf("metadata %q:\none pass %+v\nlong way %+v", md, fast, long)
		}
	})
}
