package conformance

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// roundTrip publishes m to a fresh group and returns what arrived, acked.
func (e *env) roundTrip(m *message.Message, guarantee string) *message.Message {
	e.t.Helper()
	ch, _ := e.subscribe(uniqueName("g"))
	e.publish(m)
	got := e.receive(ch, guarantee)
	ack(e.t, got)
	if got.UUID != m.UUID {
		e.t.Fatalf("guarantee broken: %s: received message %s, sent %s", guarantee, got.UUID, m.UUID)
	}
	return got
}

func (e *env) checkPayload(sent []byte, guarantee string) {
	e.t.Helper()
	m := message.NewMessage(newMsg("").UUID, sent)
	got := e.roundTrip(m, guarantee)
	if !bytes.Equal(got.Payload, sent) {
		e.t.Fatalf("guarantee broken: %s: sent %d bytes, received %d bytes that differ (first difference at byte %d)",
			guarantee, len(sent), len(got.Payload), firstDifference(sent, got.Payload))
	}
}

func firstDifference(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) < len(b) {
		return len(a)
	}
	return len(b)
}

func testEmptyPayload(e *env) {
	e.checkPayload([]byte{}, "an empty payload must round-trip")
}

func testBinaryPayload(e *env) {
	// Every byte value, including NUL, bytes that are never valid UTF-8
	// (0xC0, 0xFF) and a truncated multi-byte sequence at the end.
	p := make([]byte, 0, 260)
	for i := 0; i < 256; i++ {
		p = append(p, byte(i))
	}
	p = append(p, 0xE2, 0x82)
	e.checkPayload(p, "a binary, non-UTF-8 payload must round-trip byte for byte")
}

func testLargePayload(e *env) {
	size := 1 << 20
	if max := e.caps.MaxPayloadBytes; max > 0 && max < size {
		size = max
	}
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	e.checkPayload(p, fmt.Sprintf("a payload of %d bytes (1 MiB or the declared MaxPayloadBytes) must round-trip", size))
}

func testMetadataRoundTrips(e *env) {
	n := 25
	if max := e.caps.MaxMetadataEntries; max > 0 && max < n {
		n = max
	}
	want := map[string]string{
		"ключ":        "значение",
		"キー":          "値 🚀",
		"plain":       "ascii value",
		"with spaces": "  leading and trailing  ",
		"empty-value": "",
		"json":        `{"a":[1,2],"b":"c\"d"}`,
	}
	for i := len(want); i < n; i++ {
		want[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%02d-ünïcødé", i)
	}
	for len(want) > n { // a driver that carries fewer entries than the fixed ones
		for k := range want {
			delete(want, k)
			break
		}
	}
	m := newMsg("metadata")
	for k, v := range want {
		m.Metadata.Set(k, v)
	}
	got := e.roundTrip(m, "metadata must round-trip")
	if diff := describeDiff(want, got.Metadata); diff != "" {
		e.t.Fatalf("guarantee broken: metadata must round-trip (%d unicode entries sent):%s", len(want), diff)
	}
}

// testMetadataNamedLikeTheIDHeader: a metadata key named like the header
// Watermill's wire formats carry the id in is carried as metadata, or the
// publish is refused naming it; it never replaces the message's id, and
// never disappears.
func testMetadataNamedLikeTheIDHeader(e *env) {
	const key, value = "_watermill_message_uuid", "not-the-message-id"
	ch, _ := e.subscribe(uniqueName("g"))
	m := newMsg("id-header")
	m.Metadata.Set(key, value)
	if err := e.pub.Publish(e.topic, m); err != nil {
		if !strings.Contains(err.Error(), key) {
			e.t.Fatalf("guarantee broken: a publish refused for its metadata key %q must name the key: %v", key, err)
		}
		return
	}
	got := e.receive(ch, "a message with metadata key "+key+" must arrive when its publish succeeded")
	ack(e.t, got)
	if got.UUID != m.UUID {
		e.t.Fatalf("guarantee broken: metadata key %q must not replace the message's id: sent %s, received %s", key, m.UUID, got.UUID)
	}
	if v, ok := got.Metadata[key]; !ok || v != value {
		e.t.Fatalf("guarantee broken: metadata key %q must arrive as sent (%q) when the publish succeeded; got %q (present: %v)", key, value, v, ok)
	}
}

func testStandardAttributes(e *env) {
	sent := &sdk.Message{
		ID:            newMsg("").UUID,
		Payload:       []byte(`{"order":42}`),
		EventType:     "order.created",
		Source:        "conformance",
		Time:          time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		ContentType:   "application/json",
		CorrelationID: "corr-1",
		CausationID:   "cause-1",
		OrderingKey:   "order-42",
	}
	got := sdk.FromWatermill(e.roundTrip(sent.ToWatermill(time.Now()), "standard attributes must round-trip"))
	check := func(name, want, have string) {
		if want != have {
			e.t.Errorf("guarantee broken: standard attribute %s must round-trip: want %q, got %q", name, want, have)
		}
	}
	check("ID", sent.ID, got.ID)
	check("EventType", sent.EventType, got.EventType)
	check("Source", sent.Source, got.Source)
	check("ContentType", sent.ContentType, got.ContentType)
	check("CorrelationID", sent.CorrelationID, got.CorrelationID)
	check("CausationID", sent.CausationID, got.CausationID)
	check("OrderingKey", sent.OrderingKey, got.OrderingKey)
	if !got.Time.Equal(sent.Time) {
		e.t.Errorf("guarantee broken: standard attribute Time must round-trip to the nanosecond: want %v, got %v", sent.Time, got.Time)
	}
}

// testAlikeMessagesPublishedTogether: the messages of one Publish that
// carry the same attributes reach the driver sharing one metadata map,
// which a driver reads and never changes; each must arrive with every
// attribute.
func testAlikeMessagesPublishedTogether(e *env) {
	const guarantee = "messages published together with the same attributes must each arrive with all of them"
	c, got := e.clientInbox()
	sent := make([]*sdk.Message, 10)
	for i := range sent {
		sent[i] = &sdk.Message{Payload: []byte(strconv.Itoa(i)), EventType: "order.created", Source: "conformance",
			ContentType: "text/plain", CorrelationID: "corr-together"}
	}
	if err := c.Publish(e.ctx, e.topic, sent...); err != nil {
		e.t.Fatalf("setup: Client.Publish of %d messages failed: %v", len(sent), err)
	}
	ids := map[string]bool{}
	var at time.Time
	deadline := time.After(e.h.Timeout)
	for len(ids) < len(sent) {
		select {
		case m := <-got:
			if m.EventType != "order.created" || m.Source != "conformance" || m.ContentType != "text/plain" ||
				m.CorrelationID != "corr-together" || m.Time.IsZero() || !at.IsZero() && !m.Time.Equal(at) {
				e.t.Fatalf("guarantee broken: %s: message %s (payload %q) arrived with event type %q, source %q, content type %q, correlation id %q, time %v (another had %v)",
					guarantee, m.ID, preview(m.Payload), m.EventType, m.Source, m.ContentType, m.CorrelationID, m.Time, at)
			}
			at = m.Time
			ids[m.ID] = true
		case <-deadline:
			e.t.Fatalf("guarantee broken: %s: %d of %d messages arrived within %v", guarantee, len(ids), len(sent), e.h.Timeout)
		}
	}
}

// testCloudEventsStructuredMode: an event in CloudEvents structured mode
// (a JSON event as the body, content type application/cloudevents+json),
// as a CloudEvents SDK sends it on any protocol, reaches a handler
// unpacked: data as payload, attributes as the standard ones.
func testCloudEventsStructuredMode(e *env) {
	m := newMsg("")
	m.Payload = []byte(`{"specversion":"1.0","id":"evt-1","type":"com.example.invoice.paid","source":"/billing",` +
		`"time":"2026-12-05T10:00:00Z","datacontenttype":"application/json","tenant":"acme","data":{"invoice":7}}`)
	m.Metadata.Set(sdk.KeyContentType, "application/cloudevents+json; charset=utf-8")
	got := sdk.FromWatermill(e.roundTrip(m, "a structured-mode CloudEvent must arrive"))
	if string(got.Payload) != `{"invoice":7}` || got.EventType != "com.example.invoice.paid" || got.Source != "/billing" ||
		got.ContentType != "application/json" || got.Get("ce-id") != "evt-1" || got.Get("ce-tenant") != "acme" ||
		!got.Time.Equal(time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)) {
		e.t.Errorf("guarantee broken: a structured-mode CloudEvent must be unpacked: payload %q type %q source %q content type %q id %q tenant %q time %v",
			got.Payload, got.EventType, got.Source, got.ContentType, got.Get("ce-id"), got.Get("ce-tenant"), got.Time)
	}
}

// testClientPublishMatchesWatermill publishes one message through
// Client.Publish and the same message, made by ToWatermill, through the
// Watermill publisher sdk builds on the driver: both must arrive alike.
func testClientPublishMatchesWatermill(e *env) {
	ch, _ := e.subscribe(uniqueName("g"))
	build := func(id string) *sdk.Message {
		return &sdk.Message{
			ID: id, Payload: []byte("same either way"), EventType: "order.created", Source: "conformance",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CorrelationID: "corr-1", OrderingKey: "order-42",
			Metadata: map[string]string{"tenant": "acme", sdk.KeyEventType: "replaced by the field", sdk.KeyContentType: "text/plain"},
		}
	}
	viaClient, viaWatermill := build(newMsg("").UUID), build(newMsg("").UUID)
	if err := e.client().Publish(e.ctx, e.topic, viaClient); err != nil {
		e.t.Fatalf("Client.Publish failed: %v", err)
	}
	e.publish(viaWatermill.ToWatermill(time.Now()))
	got := map[string]*message.Message{}
	for len(got) < 2 {
		m := e.receive(ch, "messages published through the Client and through Watermill must both arrive")
		ack(e.t, m)
		got[m.UUID] = m
	}
	a, b := got[viaClient.ID], got[viaWatermill.ID]
	if a == nil || b == nil {
		e.t.Fatalf("guarantee broken: both messages must arrive with their ids (%s, %s): got %v", viaClient.ID, viaWatermill.ID, slices.Collect(maps.Keys(got)))
	}
	if !bytes.Equal(a.Payload, b.Payload) || !maps.Equal(a.Metadata, b.Metadata) {
		e.t.Fatalf("guarantee broken: Client.Publish must write what the Watermill publisher writes for the same message:\n  client:    %q %v\n  watermill: %q %v",
			a.Payload, a.Metadata, b.Payload, b.Metadata)
	}
}
