package sdk

import (
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Outgoing is a message on its way out: its id, payload and metadata as
// they go on the wire, read from the Message without copying it.
type Outgoing struct {
	m    *Message
	id   string
	time string
}

// NewOutgoing returns m as Client.Publish sends it, with now as its time
// when it has none: for code that writes messages in their wire form
// itself, such as the outbox. Like ToWatermill it gives a
// message without an ID a new one, which it does not set on m.
func NewOutgoing(m *Message, now time.Time) Outgoing {
	var call publishCall
	return call.outgoing(m, now)
}

// publishCall holds what the messages of one Publish call share: now,
// formatted at most once.
type publishCall struct {
	nowText string // "" until first needed
}

func (c *publishCall) outgoing(m *Message, now time.Time) Outgoing {
	o := Outgoing{m: m, id: m.ID}
	if o.id == "" {
		o.id = newUUID()
	}
	switch {
	case !m.Time.IsZero():
		o.time = formatTime(m.Time)
	case c.nowText != "":
		o.time = c.nowText
	default:
		c.nowText = formatTime(now)
		o.time = c.nowText
	}
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

// fill makes dm the driver message of o. Its metadata map is that of
// prev, the driver message of the Outgoing before o in the same Publish,
// when both carry the same metadata (drivers only read it on send);
// otherwise a map of its own. A batch of one kind of event, published at
// once, then makes one map instead of one a message. It reports whether
// dm shares prev's map.
func (o Outgoing) fill(dm *driver.Message, before Outgoing, prev *driver.Message) (shared bool) {
	*dm = driver.Message{ID: o.id, Payload: o.m.Payload, OrderingKey: o.OrderingKey()}
	if prev != nil && o.sameMetadata(before) {
		dm.Metadata = prev.Metadata
		return true
	}
	md := make(map[string]string, len(o.m.Metadata)+2)
	o.Metadata(func(k, v string) bool { md[k] = v; return true })
	dm.Metadata = md
	return false
}

// sameMetadata reports whether o and p yield the same metadata because
// neither has entries of its own and their standard attributes are equal.
func (o Outgoing) sameMetadata(p Outgoing) bool {
	a, b := o.m, p.m
	return len(a.Metadata) == 0 && len(b.Metadata) == 0 && o.time == p.time &&
		a.EventType == b.EventType && a.Source == b.Source && a.ContentType == b.ContentType &&
		a.CorrelationID == b.CorrelationID && a.CausationID == b.CausationID && a.OrderingKey == b.OrderingKey
}
