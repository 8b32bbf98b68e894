package sdk

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// MessagePublisher is an optional fast path for a transport's publisher:
// Client.Publish uses it, when present, instead of Watermill's Publish. The
// driver gets each message's parts (Outgoing) rather than a Watermill
// message (a struct, two channels and a map) built only to be taken apart
// into its wire format. It must write exactly what it writes for the
// Watermill message ToWatermill makes; the conformance suite checks that
// (TestClientPublishWritesWhatWatermillPublishWrites). Watermill's Publish
// stays the contract every driver implements.
type MessagePublisher interface {
	// PublishMessages sends msgs to topic, as Publish does, giving up when
	// ctx is done.
	PublishMessages(ctx context.Context, topic string, msgs []Outgoing) error
}

// Outgoing is a message on its way to a MessagePublisher: what
// ToWatermill would make of it, without making it.
type Outgoing struct {
	m    *Message
	id   string
	time string
}

// NewOutgoing returns m as Client.Publish hands it to a MessagePublisher,
// with now as its time when it has none: for code that writes messages in
// their wire form itself, such as the outbox. Like ToWatermill it gives a
// message without an ID a new one, which it does not set on m.
func NewOutgoing(m *Message, now time.Time) Outgoing {
	o := Outgoing{m: m, id: m.ID}
	if o.id == "" {
		o.id = uuid.NewString()
	}
	t := m.Time
	if t.IsZero() {
		t = now
	}
	o.time = t.UTC().Format(keyTimeLayout)
	return o
}

// ID is the message id (generated when the message had none).
func (o Outgoing) ID() string { return o.id }

// Payload is the message body.
func (o Outgoing) Payload() []byte { return o.m.Payload }

// OrderingKey is the message's ordering key: the field, or else a
// KeyOrderingKey metadata entry.
func (o Outgoing) OrderingKey() string {
	if o.m.OrderingKey != "" {
		return o.m.OrderingKey
	}
	return o.m.Metadata[KeyOrderingKey]
}

// MetadataLen is the number of entries Metadata yields.
func (o Outgoing) MetadataLen() int {
	n := 0
	for k := range o.m.Metadata {
		if !o.overridden(k) {
			n++
		}
	}
	o.standard(func(string, string) bool { n++; return true })
	return n
}

// Metadata yields the metadata as ToWatermill writes it: the message's own
// entries, then the standard attributes, which replace entries of the same
// name. It is an iter.Seq2.
func (o Outgoing) Metadata(yield func(k, v string) bool) {
	for k, v := range o.m.Metadata {
		if !o.overridden(k) && !yield(k, v) {
			return
		}
	}
	o.standard(yield)
}

func (o Outgoing) standard(yield func(k, v string) bool) {
	m := o.m
	_ = yield(KeyTime, o.time) &&
		(m.EventType == "" || yield(KeyEventType, m.EventType)) &&
		(m.Source == "" || yield(KeySource, m.Source)) &&
		(m.ContentType == "" || yield(KeyContentType, m.ContentType)) &&
		(m.CorrelationID == "" || yield(KeyCorrelationID, m.CorrelationID)) &&
		(m.CausationID == "" || yield(KeyCausationID, m.CausationID)) &&
		(m.OrderingKey == "" || yield(KeyOrderingKey, m.OrderingKey))
}

// overridden reports whether a metadata entry named k gives way to a
// standard attribute.
func (o Outgoing) overridden(k string) bool {
	m := o.m
	switch k {
	case KeyTime:
		return true
	case KeyEventType:
		return m.EventType != ""
	case KeySource:
		return m.Source != ""
	case KeyContentType:
		return m.ContentType != ""
	case KeyCorrelationID:
		return m.CorrelationID != ""
	case KeyCausationID:
		return m.CausationID != ""
	case KeyOrderingKey:
		return m.OrderingKey != ""
	}
	return false
}
