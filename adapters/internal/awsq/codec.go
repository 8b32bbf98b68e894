// Package awsq holds what the SQS and SNS drivers share: AWS settings, the
// mapping of messages to queue messages within SQS's limits, the batching
// sender and the queue consumer. It is internal to the adapters.
package awsq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Attribute names the drivers add. A message carries at most MaxAttributes
// message attributes on SQS and SNS; metadata that does not fit, or whose
// name or value SQS would reject, travels packed as JSON in AttrPacked.
const (
	AttrID       = "msgkit-id"       // the message id (SQS assigns its own MessageId)
	AttrPacked   = "msgkit-metadata" // JSON object of the remaining metadata
	AttrEncoding = "msgkit-body"     // "base64" or "empty" when the body is not the payload as is
	// MaxAttributes is SQS's (and SNS raw delivery's) limit per message.
	MaxAttributes = 10
	// MaxMessageBytes is SQS's size limit: body plus attribute names, types
	// and values.
	MaxMessageBytes = 262144
	// MaxPayloadBytes is the payload size the drivers guarantee: a binary
	// payload is sent base64-encoded (4/3 the size), and room is left for
	// metadata.
	MaxPayloadBytes = 190 << 10
	// MaxMetadataBytes bounds the metadata keys and values of a message.
	// A message at both limits can still exceed MaxMessageBytes (SQS counts
	// body and attributes together); Encode then refuses it before
	// sending.
	MaxMetadataBytes = 8 << 10
)

// Encoded is a message as SQS or SNS carries it.
type Encoded struct {
	ID         string
	Body       string
	Attributes map[string]string // all of DataType String
	OrderKey   string            // sdk.KeyOrderingKey, for FIFO MessageGroupId
}

// Size is the message's size as SQS counts it.
func (e Encoded) Size() int {
	n := len(e.Body)
	for k, v := range e.Attributes {
		n += len(k) + len("String") + len(v)
	}
	return n
}

// standard orders metadata keys so the standard attributes, which
// non-Go consumers look for, are the ones carried natively.
var standard = []string{sdk.KeyEventType, sdk.KeySource, sdk.KeyTime, sdk.KeyContentType, sdk.KeyCorrelationID,
	sdk.KeyCausationID, sdk.KeyOrderingKey, sdk.KeyReplyTo, sdk.KeyInReplyTo, sdk.KeyTraceParent, sdk.KeyTraceState}

// Encode maps m to a queue message: the payload as the body when it is text
// SQS accepts, base64 otherwise; metadata as native attributes while they
// fit, the rest packed. It fails, before any network call, when the result
// exceeds SQS's size limit.
func Encode(m *driver.Message) (Encoded, error) {
	e := Encoded{ID: m.ID, Attributes: map[string]string{AttrID: m.ID}, OrderKey: m.OrderingKey}
	switch {
	case len(m.Payload) == 0:
		e.Body, e.Attributes[AttrEncoding] = "-", "empty" // SQS refuses an empty body
	case validText(string(m.Payload)):
		e.Body = string(m.Payload)
	default:
		e.Body, e.Attributes[AttrEncoding] = base64.StdEncoding.EncodeToString(m.Payload), "base64"
	}

	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		for i, s := range standard {
			if s == k {
				return i
			}
		}
		return len(standard)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank(keys[i]), rank(keys[j])
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	var native, packed []string
	for _, k := range keys {
		if validName(k) && m.Metadata[k] != "" && validText(m.Metadata[k]) {
			native = append(native, k)
		} else {
			packed = append(packed, k)
		}
	}
	free := MaxAttributes - len(e.Attributes)
	if len(packed) > 0 || len(native) > free {
		free-- // one slot for the packed attribute
		if len(native) > free {
			packed = append(packed, native[free:]...)
			native = native[:free]
		}
	}
	for _, k := range native {
		e.Attributes[k] = m.Metadata[k]
	}
	if len(packed) > 0 {
		rest := make(map[string]string, len(packed))
		for _, k := range packed {
			rest[k] = m.Metadata[k]
		}
		b, err := json.Marshal(rest)
		if err != nil {
			return Encoded{}, fmt.Errorf("pack the metadata of message %s: %w", m.ID, err)
		}
		e.Attributes[AttrPacked] = string(b)
	}
	if size := e.Size(); size > MaxMessageBytes {
		return Encoded{}, fmt.Errorf("message %s is %d bytes as an SQS message (body %d bytes%s, plus %d attributes), over the %d-byte limit of SQS and SNS; send large payloads by reference (store the payload elsewhere, publish its location)",
			m.ID, size, len(e.Body), map[bool]string{true: ", base64-encoded because the payload is binary", false: ""}[e.Attributes[AttrEncoding] == "base64"], len(e.Attributes), MaxMessageBytes)
	}
	return e, nil
}

// Decode rebuilds a message from a queue message's body and String
// attributes. It never fails: a body or attribute that is not in this
// format is taken as is (a message from a non-Go producer), and the
// fallback id, when the message has no AttrID, is the queue's message id.
func Decode(body string, attrs map[string]string, fallbackID string) *driver.Message {
	if attrs[AttrID] == "" {
		if env, ok := snsEnvelope(body); ok {
			return Decode(env.Message, env.attributes(), env.MessageID)
		}
	}
	id, derived := attrs[AttrID], false
	if id == "" {
		id, derived = fallbackID, true
	}
	payload := []byte(body)
	switch attrs[AttrEncoding] {
	case "empty":
		payload = []byte{}
	case "base64":
		if b, err := base64.StdEncoding.DecodeString(body); err == nil {
			payload = b
		}
	}
	m := &driver.Message{ID: id, DerivedID: derived, Payload: payload, Metadata: make(map[string]string, len(attrs))}
	for k, v := range attrs {
		switch k {
		case AttrID, AttrEncoding:
		case AttrPacked:
			var rest map[string]string
			if json.Unmarshal([]byte(v), &rest) == nil {
				for rk, rv := range rest {
					m.Metadata[rk] = rv
				}
			} else {
				m.Metadata[k] = v
			}
		default:
			m.Metadata[k] = v
		}
	}
	return m
}

// envelope is the JSON an SNS subscription without raw message delivery
// puts around each message in the queue.
type envelope struct {
	Type              string
	MessageID         string `json:"MessageId"`
	TopicArn          string
	Message           string
	MessageAttributes map[string]envelopeAttribute
}

// envelopeAttribute is a message attribute in the envelope: AWS writes
// Type and Value; some emulators (goaws) write the SQS form, DataType and
// StringValue or BinaryValue.
type envelopeAttribute struct {
	Type, Value                        string
	DataType, StringValue, BinaryValue string
}

// snsEnvelope recognises a body that is an SNS notification envelope: a
// queue subscribed to a topic without raw delivery (by an administrator,
// say). The message inside is then decoded as if delivered raw.
func snsEnvelope(body string) (envelope, bool) {
	if !strings.HasPrefix(body, "{") || !strings.Contains(body, `"TopicArn"`) {
		return envelope{}, false
	}
	var env envelope
	if json.Unmarshal([]byte(body), &env) != nil || env.Type != "Notification" || env.TopicArn == "" || env.MessageID == "" {
		return envelope{}, false
	}
	return env, true
}

// attributes are the envelope's message attributes as metadata values.
// SNS writes a Binary attribute's value as base64 already.
func (e envelope) attributes() map[string]string {
	out := make(map[string]string, len(e.MessageAttributes))
	for k, v := range e.MessageAttributes {
		switch {
		case v.Value != "":
			out[k] = v.Value
		case v.StringValue != "":
			out[k] = v.StringValue
		default:
			out[k] = v.BinaryValue
		}
	}
	return out
}

// validName reports whether SQS accepts k as a message attribute name.
func validName(k string) bool {
	if k == "" || len(k) > 256 || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
		return false
	}
	lk := strings.ToLower(k)
	if strings.HasPrefix(lk, "aws.") || strings.HasPrefix(lk, "amazon.") || strings.HasPrefix(k, "msgkit-") {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// validText reports whether s is valid UTF-8 made only of the characters
// SQS allows in a body or attribute value (those of XML 1.0).
func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		ok := r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
		if !ok {
			return false
		}
	}
	return true
}
