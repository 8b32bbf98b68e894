package sdk_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// CloudEvents binary mode spelled as the Kafka binding (ce_type) or the
// AMQP one (cloudEvents:type, cloudEvents_type) reads as msgkit's own
// attributes; msgkit's spelling wins where both are present.
func TestCloudEventsBindingsAreReadAsOurAttributes(t *testing.T) {
	for _, md := range []map[string]string{
		{"ce_type": "order.created", "ce_source": "shop", "ce_time": "2026-12-05T10:00:00Z", "ce_id": "e-1", "ce_specversion": "1.0"},
		{"cloudEvents:type": "order.created", "cloudEvents:source": "shop", "cloudEvents:time": "2026-12-05T10:00:00Z", "cloudEvents:id": "e-1", "cloudEvents:specversion": "1.0"},
		{"cloudEvents_type": "order.created", "cloudEvents_source": "shop", "cloudEvents_time": "2026-12-05T10:00:00Z", "cloudEvents_id": "e-1", "cloudEvents_specversion": "1.0"},
	} {
		wm := message.NewMessage("id-1", []byte("{}"))
		for k, v := range md {
			wm.Metadata.Set(k, v)
		}
		m := sdk.FromWatermill(wm)
		if m.EventType != "order.created" || m.Source != "shop" || !m.Time.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) ||
			m.Get("ce-id") != "e-1" || m.Get("ce-specversion") != "1.0" {
			t.Errorf("%v: got type %q source %q time %v id %q", md, m.EventType, m.Source, m.Time, m.Get("ce-id"))
		}
	}
	wm := message.NewMessage("id-2", nil)
	wm.Metadata.Set("ce-type", "ours")
	wm.Metadata.Set("ce_type", "theirs")
	if m := sdk.FromWatermill(wm); m.EventType != "ours" || m.Get("ce_type") != "theirs" {
		t.Errorf("msgkit's own ce-type must win and the other be kept: type %q, ce_type %q", m.EventType, m.Get("ce_type"))
	}
}

// A structured-mode event (application/cloudevents+json) is unpacked: its
// data is the payload, its attributes metadata, its data content type the
// content type; JSON data stays JSON, text data its text, binary data is
// decoded from data_base64.
func TestCloudEventsStructuredModeIsUnpacked(t *testing.T) {
	for _, c := range []struct {
		name, body, wantPayload, wantCT string
	}{
		{"json data", `{"specversion":"1.0","type":"order.created","source":"/shop","id":"e-1","time":"2026-12-05T10:00:00Z","datacontenttype":"application/json","data":{"order":1},"tenant":"acme","priority":3}`, `{"order":1}`, "application/json"},
		{"text data", `{"specversion":"1.0","type":"order.created","source":"/shop","id":"e-1","datacontenttype":"text/plain","data":"hello"}`, "hello", "text/plain"},
		{"binary data", `{"specversion":"1.0","type":"order.created","source":"/shop","id":"e-1","datacontenttype":"application/octet-stream","data_base64":"AAEC/w=="}`, "\x00\x01\x02\xff", "application/octet-stream"},
	} {
		wm := message.NewMessage("id-1", []byte(c.body))
		wm.Metadata.Set(sdk.KeyContentType, "application/cloudevents+json; charset=utf-8")
		m := sdk.FromWatermill(wm)
		if string(m.Payload) != c.wantPayload || m.ContentType != c.wantCT || m.EventType != "order.created" || m.Source != "/shop" || m.Get("ce-id") != "e-1" {
			t.Errorf("%s: payload %q content type %q type %q source %q id %q", c.name, m.Payload, m.ContentType, m.EventType, m.Source, m.Get("ce-id"))
		}
		if c.name == "json data" && (m.Get("ce-tenant") != "acme" || m.Get("ce-priority") != "3" || !m.Time.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC))) {
			t.Errorf("extensions and time: tenant %q priority %q time %v", m.Get("ce-tenant"), m.Get("ce-priority"), m.Time)
		}
	}
	wm := message.NewMessage("id-2", []byte("not json"))
	wm.Metadata.Set(sdk.KeyContentType, "application/cloudevents+json")
	if m := sdk.FromWatermill(wm); string(m.Payload) != "not json" || m.ContentType != "application/cloudevents+json" {
		t.Errorf("a payload that is not an event must stay as it is, got %q %q", m.Payload, m.ContentType)
	}
}

// A binding that writes the data content type as an attribute
// (ce-datacontenttype, ce_datacontenttype) gives the event its content
// type; a content-type the message has wins.
func TestCloudEventsDataContentTypeAttributeIsTheContentType(t *testing.T) {
	for _, prefix := range []string{"ce-", "ce_", "cloudEvents:"} {
		wm := message.NewMessage("id-1", []byte("{}"))
		wm.Metadata.Set(prefix+"specversion", "1.0")
		wm.Metadata.Set(prefix+"datacontenttype", "application/json")
		if m := sdk.FromWatermill(wm); m.ContentType != "application/json" || m.Get("ce-datacontenttype") != "" {
			t.Errorf("%sdatacontenttype: content type %q, left %q", prefix, m.ContentType, m.Get("ce-datacontenttype"))
		}
	}
	wm := message.NewMessage("id-2", []byte("{}"))
	wm.Metadata.Set("ce-specversion", "1.0")
	wm.Metadata.Set("content-type", "text/plain")
	wm.Metadata.Set("ce-datacontenttype", "application/json")
	if m := sdk.FromWatermill(wm); m.ContentType != "text/plain" || m.Get("ce-datacontenttype") != "application/json" {
		t.Errorf("the message's own content-type must win and the attribute be kept: %q, %q", m.ContentType, m.Get("ce-datacontenttype"))
	}
}

// Without a binding's specversion a message is not an event in that
// binding, and keys spelled like its attributes are the publisher's own
// metadata: they arrive as they were sent, not renamed.
func TestKeysSpelledLikeABindingsAttributesAreKeptWithoutItsSpecversion(t *testing.T) {
	sent := map[string]string{"ce_id": "a", "ce_type": "b", "cloudEvents:id": "c", "cloudEvents_source": "d", "ce-datacontenttype": "text/x"}
	wm := message.NewMessage("id-1", []byte("{}"))
	for k, v := range sent {
		wm.Metadata.Set(k, v)
	}
	m := sdk.FromWatermill(wm)
	for k, v := range sent {
		if got, ok := m.Metadata[k]; !ok || got != v {
			t.Errorf("metadata %q: sent %q, got %q (present: %v); all: %q", k, v, got, ok, m.Metadata)
		}
	}
	if m.EventType != "" || m.Source != "" || m.ContentType != "" {
		t.Errorf("no attribute may be read from them: type %q source %q content type %q", m.EventType, m.Source, m.ContentType)
	}
}

// An attribute an event carries twice with one value (the AMQP binding's
// cloudEvents:type, and ce-type a driver lifted from the type property)
// arrives once, under msgkit's name.
func TestAnAttributeCarriedTwiceAlikeArrivesOnce(t *testing.T) {
	wm := message.NewMessage("id-1", []byte("{}"))
	for k, v := range map[string]string{"cloudEvents:specversion": "1.0", "cloudEvents:type": "t", "ce-type": "t", "cloudEvents:source": "s", "ce-source": "other"} {
		wm.Metadata.Set(k, v)
	}
	m := sdk.FromWatermill(wm)
	if _, ok := m.Metadata["cloudEvents:type"]; ok || m.EventType != "t" {
		t.Errorf("cloudEvents:type equal to ce-type must go: %q, EventType %q", m.Metadata, m.EventType)
	}
	if m.Metadata["cloudEvents:source"] != "s" || m.Source != "other" {
		t.Errorf("a different cloudEvents:source must stay beside ce-source, which wins: %q, Source %q", m.Metadata, m.Source)
	}
}
