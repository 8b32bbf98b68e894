package sdk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys of the standard attributes. Every adapter round-trips them
// as plain string metadata (AMQP headers, Kafka headers, SQS attributes...),
// so non-Go consumers read them under these CloudEvents-style names.
const (
	KeyEventType     = "ce-type"        // what happened, e.g. "order.created"
	KeySource        = "ce-source"      // who published it, e.g. "orders-service"
	KeyTime          = "ce-time"        // when, RFC 3339 with nanoseconds, UTC
	KeyContentType   = "content-type"   // payload media type, e.g. "application/json"
	KeyCorrelationID = "correlation-id" // the conversation this message belongs to
	KeyCausationID   = "causation-id"   // the id of the message that caused this one
	KeyOrderingKey   = "ordering-key"   // messages with one key are delivered in order
	KeyReplyTo       = "reply-to"       // where a request's reply goes
	KeyTraceParent   = "traceparent"    // W3C trace context
	KeyTraceState    = "tracestate"     // W3C trace context
	KeyAttempt       = "x-attempt"      // delivery attempt, set by retry middleware
	keyTimeLayout    = time.RFC3339Nano
)

// Message is what services publish and handle. The standard attributes
// are fields; Publish writes them to Metadata under the Key* names and
// handlers get them back filled in.
type Message struct {
	// ID identifies the message; Publish fills in a UUID when it is empty.
	ID string
	// Payload is the message body, any bytes.
	Payload []byte
	// Metadata holds application headers (string to string). Keys that
	// clash with a standard attribute are overwritten by the field.
	Metadata map[string]string

	EventType     string
	Source        string
	Time          time.Time // zero: Publish sets the current time; years 0000 to 9999 (ErrInvalidTime otherwise)
	ContentType   string
	CorrelationID string
	CausationID   string
	OrderingKey   string

	ctx        context.Context
	topic      string // set on received messages
	subscribed string
	group      string
}

// Topic returns the topic a received message was published to ("" for a
// message being built for publishing): the concrete topic, also when the
// subscription's topic is a pattern (order.* on RabbitMQ's shared topic
// exchange), which SubscribedTopic returns.
func (m *Message) Topic() string { return m.topic }

// SubscribedTopic returns the topic the subscription that received the
// message was made with: a pattern where the driver takes patterns, and
// otherwise the same as Topic.
func (m *Message) SubscribedTopic() string { return m.subscribed }

// Group returns the consumer group that received the message.
func (m *Message) Group() string { return m.group }

// NewMessage returns a message with a fresh ID and the given payload.
func NewMessage(payload []byte) *Message {
	return &Message{ID: newUUID(), Payload: payload}
}

// Context returns the context the message was received with (it carries the
// handler's deadline and cancellation), or context.Background.
func (m *Message) Context() context.Context {
	if m.ctx == nil {
		return context.Background()
	}
	return m.ctx
}

// Get returns a metadata value, or "" when it is absent.
func (m *Message) Get(key string) string { return m.Metadata[key] }

// Set sets a metadata value.
func (m *Message) Set(key, value string) {
	if m.Metadata == nil {
		m.Metadata = map[string]string{}
	}
	m.Metadata[key] = value
}

var standardKeys = []string{KeyEventType, KeySource, KeyTime, KeyContentType, KeyCorrelationID, KeyCausationID, KeyOrderingKey}

// ToWatermill converts m to a Watermill message, writing the standard
// attributes into metadata. It does not modify m. now fills an unset Time.
// It does not validate m as Publish does: a Time outside the years 0000 to
// 9999 is written as text that RFC 3339 readers refuse (a msgkit consumer
// then sees a zero Time), so check it with CheckTime first when m comes
// from outside.
func (m *Message) ToWatermill(now time.Time) *message.Message {
	id := m.ID
	if id == "" {
		id = newUUID()
	}
	wm := message.NewMessage(id, m.Payload)
	md := wm.Metadata // already allocated by NewMessage; holds 8 entries without growing
	if n := len(m.Metadata) + len(standardKeys); n > 8 {
		md = make(message.Metadata, n)
		wm.Metadata = md
	}
	for k, v := range m.Metadata {
		md[k] = v
	}
	t := m.Time
	if t.IsZero() {
		t = now
	}
	md[KeyTime] = formatTime(t)
	setIf(md, KeyEventType, m.EventType)
	setIf(md, KeySource, m.Source)
	setIf(md, KeyContentType, m.ContentType)
	setIf(md, KeyCorrelationID, m.CorrelationID)
	setIf(md, KeyCausationID, m.CausationID)
	setIf(md, KeyOrderingKey, m.OrderingKey)
	return wm
}

// FromWatermill converts a received Watermill message to a Message. The
// standard attributes are lifted into fields and also stay in Metadata, so
// code that reads either sees the same value.
func FromWatermill(wm *message.Message) *Message { return fromWatermill(wm, true) }

// fromWatermill converts wm; the Client's consume path, which owns wm, shares
// its metadata map instead of copying it.
func fromWatermill(wm *message.Message, copyMetadata bool) *Message {
	md := map[string]string(wm.Metadata)
	if copyMetadata || md == nil {
		md = make(map[string]string, len(wm.Metadata))
		for k, v := range wm.Metadata {
			md[k] = v
		}
	}
	m := new(Message)
	fillReceived(m, wm.UUID, wm.Payload, md)
	m.ctx = wm.Context()
	return m
}

// fillReceived makes m a received message around md (not copied), lifting
// the standard attributes into fields. A message whose attributes follow
// another CloudEvents binding (ce_type, cloudEvents:type,
// ce-datacontenttype) or structured mode has them renamed and unpacked
// into msgkit's names first; any other is read in one pass.
func fillReceived(m *Message, id string, payload []byte, md map[string]string) {
	if md == nil {
		md = map[string]string{}
	}
	ts, ours := readStandard(m, md, true)
	if !ours {
		cloudEventsNames(md)
		payload = cloudEventsStructured(payload, md)
		ts, _ = readStandard(m, md, false)
	}
	m.ID, m.Payload, m.Metadata = id, payload, md
	if ts != "" {
		if t, err := parseTime(ts); err == nil {
			m.Time = t
		}
	}
}

// readStandard makes m hold md's standard attributes and returns the
// ce-time text. With foreign, it stops at the first sign of another
// binding's names or of a structured event and returns false.
func readStandard(m *Message, md map[string]string, foreign bool) (ts string, ours bool) {
	*m = Message{}
	for k, v := range md {
		switch k {
		case KeyEventType:
			m.EventType = v
		case KeySource:
			m.Source = v
		case KeyContentType:
			m.ContentType = v
		case KeyCorrelationID:
			m.CorrelationID = v
		case KeyCausationID:
			m.CausationID = v
		case KeyOrderingKey:
			m.OrderingKey = v
		case KeyTime:
			ts = v
		default:
			if foreign && (k == "ce-datacontenttype" || strings.HasPrefix(k, "ce_") || strings.HasPrefix(k, "cloudEvents")) {
				return "", false
			}
		}
	}
	if foreign && strings.HasPrefix(strings.ToLower(m.ContentType), "application/cloudevents+json") {
		return "", false
	}
	return ts, true
}

// CloudEvents binary mode names its attributes per protocol binding:
// ce-type in HTTP headers (msgkit's names on every broker), ce_type in
// Kafka headers, cloudEvents:type or cloudEvents_type in AMQP properties.
// A message from a producer that follows the Kafka or AMQP binding has its
// attributes renamed to msgkit's on receive, so EventType, Source and Time
// read them; where msgkit's spelling already holds the same value the
// other is dropped, and where it holds another both are left as they are.
var cloudEventsPrefixes = []string{"ce_", "cloudEvents:", "cloudEvents_"}

// cloudEventsNames renames the attributes of an event that follows
// another binding to msgkit's names. Only a binding whose specversion the
// message carries counts (every CloudEvents event has one): without it,
// ce_id or ce-datacontenttype are a publisher's own metadata, which
// arrives as it was sent.
func cloudEventsNames(md map[string]string) {
	for _, p := range cloudEventsPrefixes {
		if _, event := md[p+"specversion"]; !event {
			continue
		}
		for k, v := range md {
			attr, ok := strings.CutPrefix(k, p)
			if !ok || attr == "" {
				continue
			}
			ours := "ce-" + strings.ToLower(attr)
			switch have, taken := md[ours]; {
			case !taken:
				md[ours] = v
				delete(md, k)
			case have == v:
				// The same attribute twice (a driver lifted it from a
				// native property too): one copy is enough.
				delete(md, k)
			}
		}
	}
	if _, event := md["ce-specversion"]; event {
		if dct := md["ce-datacontenttype"]; dct != "" && md[KeyContentType] == "" {
			// Binary mode's datacontenttype attribute, where a binding writes
			// it as one (the CloudEvents SDK's NATS binding): the content type.
			md[KeyContentType] = dct
			delete(md, "ce-datacontenttype")
		}
	}
}

// cloudEventsStructured unpacks a CloudEvents structured-mode message
// (content type application/cloudevents+json): the event's data becomes
// the payload and its attributes metadata (ce-type, ce-source...; the data
// content type is content-type), as binary mode would have carried them.
// A payload that is not such an event is returned as it is.
func cloudEventsStructured(payload []byte, md map[string]string) []byte {
	if !structuredMode(md) {
		return payload
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(payload, &ev) != nil || ev["specversion"] == nil {
		return payload
	}
	var data []byte
	if raw, ok := ev["data_base64"]; ok {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return payload
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return payload
		}
		data = b
	} else if raw, ok := ev["data"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil && !isJSONType(ev["datacontenttype"]) {
			data = []byte(s) // text data travels as a JSON string
		} else {
			data = []byte(raw)
		}
	}
	delete(md, KeyContentType)
	for name, raw := range ev {
		switch name {
		case "data", "data_base64":
			continue
		case "datacontenttype":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				md[KeyContentType] = s
			}
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw) // a number or boolean extension, as JSON text
		}
		if _, taken := md["ce-"+name]; !taken {
			md["ce-"+name] = s
		}
	}
	return data
}

// structuredMode reports whether md's content type says the payload is a
// CloudEvents event in structured mode (JSON format).
func structuredMode(md map[string]string) bool {
	return strings.HasPrefix(strings.ToLower(md[KeyContentType]), "application/cloudevents+json")
}

// isJSONType reports whether a datacontenttype attribute says JSON (or is
// absent, which CloudEvents' JSON format reads as JSON).
func isJSONType(raw json.RawMessage) bool {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil {
		return true
	}
	s = strings.ToLower(s)
	return strings.HasPrefix(s, "application/json") || strings.HasSuffix(strings.SplitN(s, ";", 2)[0], "+json")
}

func setIf(md message.Metadata, k, v string) {
	if v != "" {
		md[k] = v
	}
}
