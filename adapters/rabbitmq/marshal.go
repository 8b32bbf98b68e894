package rabbitmq

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// toPublishing carries metadata as AMQP headers and also copies the standard
// attributes to the native properties (message-id, correlation-id,
// content-type, reply-to, type, app-id, timestamp), where non-Go clients and
// the management UI look for them.
//
// With cloudEvents (wire_format: cloudevents) the headers follow the
// CloudEvents AMQP binding's binary mode: each ce-<attr> entry is header
// cloudEvents:<attr>, with cloudEvents:specversion 1.0 and cloudEvents:id
// the message id; the data content type stays in content_type.
func toPublishing(m *driver.Message, persistent, cloudEvents bool) amqp.Publishing {
	headers := make(amqp.Table, len(m.Metadata)+2)
	for k, v := range m.Metadata {
		if attr, ok := strings.CutPrefix(k, "ce-"); ok && cloudEvents {
			k = "cloudEvents:" + attr
		}
		headers[k] = v
	}
	if cloudEvents {
		headers["cloudEvents:specversion"] = "1.0"
		headers["cloudEvents:id"] = m.ID
	}
	p := amqp.Publishing{
		Headers:       headers,
		Body:          m.Payload,
		MessageId:     short(m.ID),
		ContentType:   short(m.Metadata[sdk.KeyContentType]),
		CorrelationId: short(m.Metadata[sdk.KeyCorrelationID]),
		ReplyTo:       short(m.Metadata[sdk.KeyReplyTo]),
		Type:          short(m.Metadata[sdk.KeyEventType]),
		AppId:         short(m.Metadata[sdk.KeySource]),
	}
	if m.ID != "" {
		// watermill-amqp reads the id only from this header: written always,
		// so a Watermill service consuming the topic sees the same id (and
		// an id too long for the property travels whole).
		headers[watermillUUIDHeader] = m.ID
	}
	if persistent {
		p.DeliveryMode = amqp.Persistent
	}
	// Parsed only when present: a failed time.Parse allocates its error.
	if v := m.Metadata[sdk.KeyTime]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			p.Timestamp = t
		}
	}
	if v := m.Metadata[sdk.KeyDeadline]; v != "" {
		if d, err := time.Parse(time.RFC3339Nano, v); err == nil {
			// A request's deadline as the broker's own expiry: the queue
			// drops it unread once its caller has given up.
			p.Expiration = strconv.FormatInt(max(time.Until(d).Milliseconds(), 1), 10)
		}
	}
	return p
}

// short returns s when it fits an AMQP property (a short string, at most
// 255 bytes), else "": the value still travels in its header, and a
// property over the limit would fail the whole frame.
func short(s string) string {
	if len(s) > 255 {
		return ""
	}
	return s
}

// headerFrameSize is an upper bound of the size of the content header frame
// toPublishing makes of m: properties and the headers table, each entry a
// name, a type and a long string. It reads m without building the
// publishing, which would cost as many allocations as the publish itself.
// It also returns a metadata key whose header name is longer than an AMQP
// short string, or "": the client library cannot write such a table and
// closes the connection over it, failing every other publish on it.
func headerFrameSize(m *driver.Message, cloudEvents bool) (n int, longKey string) {
	const entry = 1 + 1 + 4 // name length, type, value length
	n = 64                  // class, weight, body size, flags, delivery mode, priority, timestamp, table length
	for k, v := range m.Metadata {
		name := len(k)
		if cloudEvents && strings.HasPrefix(k, "ce-") { // renamed cloudEvents:<attr>
			name += len("cloudEvents:") - len("ce-")
		}
		if name > maxName {
			longKey = k
		}
		n += entry + name + len(v)
	}
	if cloudEvents {
		n += entry + len("cloudEvents:specversion") + len("1.0")
		n += entry + len("cloudEvents:id") + len(m.ID)
	}
	if m.ID != "" {
		n += entry + len(watermillUUIDHeader) + len(m.ID)
	}
	// The properties, each a short string: message-id, content-type,
	// correlation-id, reply-to, type and app-id from the message,
	// content-encoding and user-id empty, and the expiration, at most 20
	// digits, when the message has a deadline.
	for _, s := range []string{m.ID, m.Metadata[sdk.KeyContentType], m.Metadata[sdk.KeyCorrelationID],
		m.Metadata[sdk.KeyReplyTo], m.Metadata[sdk.KeyEventType], m.Metadata[sdk.KeySource], "", ""} {
		n += 1 + len(short(s))
	}
	n++
	if m.Metadata[sdk.KeyDeadline] != "" {
		n += 20
	}
	return n, longKey
}

// fromDelivery decodes d into m. Headers win; a standard attribute set
// only as a native property (by a non-Go publisher) is lifted into
// metadata. Headers that are not strings (x-death tables, numbers set by
// other clients) are rendered as text instead of failing the message, which
// would otherwise be nacked and redelivered forever.
func fromDelivery(m *driver.Message, d *amqp.Delivery) {
	md := make(map[string]string, len(d.Headers)+2)
	for k, v := range d.Headers {
		md[k] = headerString(v)
	}
	*m = driver.Message{ID: d.MessageId, Payload: d.Body, Metadata: md}
	if id, ok := md[watermillUUIDHeader]; ok {
		if m.ID == "" {
			m.ID = id
		}
		delete(md, watermillUUIDHeader)
	}
	if m.ID == "" {
		m.ID, m.DerivedID = contentID(d), true
	}
	// has: the attribute is there already, in msgkit's name or the AMQP
	// binding's (cloudEvents:time). A property never replaces it: the
	// timestamp property holds whole seconds only.
	has := func(key string) bool {
		if _, ok := md[key]; ok {
			return true
		}
		attr, ok := strings.CutPrefix(key, "ce-")
		if !ok {
			return false
		}
		_, colon := md["cloudEvents:"+attr]
		_, underscore := md["cloudEvents_"+attr]
		return colon || underscore
	}
	fill := func(key, value string) {
		if value != "" && !has(key) {
			md[key] = value
		}
	}
	fill(sdk.KeyContentType, d.ContentType)
	fill(sdk.KeyCorrelationID, d.CorrelationId)
	fill(sdk.KeyReplyTo, d.ReplyTo)
	fill(sdk.KeyEventType, d.Type)
	fill(sdk.KeySource, d.AppId)
	if !has(sdk.KeyTime) && !d.Timestamp.IsZero() {
		md[sdk.KeyTime] = d.Timestamp.UTC().Format(time.RFC3339Nano)
	}
}

// watermillUUIDHeader is where watermill-amqp producers put the message id.
const watermillUUIDHeader = "_watermill_message_uuid"

// contentID gives a message that arrived without an id (a non-Go producer
// that set no message-id) one that is the same on every redelivery of it:
// "sha256:" and the first 16 bytes, in hex, of a SHA-256 over the body, the
// properties and the headers, leaving out the headers the broker adds or
// changes on redelivery and dead-lettering (x-death, x-delivery-count,
// x-first-death-*, x-last-death-*). Two messages alike in every byte,
// property and header get the same id, and an inbox takes the second for a
// redelivery of the first: producers that send such messages should set a
// message-id.
func contentID(d *amqp.Delivery) string {
	h := sha256.New()
	field := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	field(d.ContentType)
	field(d.ContentEncoding)
	field(d.CorrelationId)
	field(d.ReplyTo)
	field(d.Type)
	field(d.AppId)
	field(d.UserId)
	if !d.Timestamp.IsZero() {
		field(d.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		if k == "x-death" || k == "x-delivery-count" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(headerString(d.Headers[k]))
	}
	h.Write(d.Body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)[:16])
}

func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	case amqp.Table, []any:
		b, err := json.Marshal(x)
		if err == nil {
			return string(b)
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}
