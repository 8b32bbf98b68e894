package nats

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/adapters/internal/cloudevents"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Message layout, the same as watermill-nats writes, readable by any NATS
// client:
//
//	data                     the payload bytes
//	_watermill_message_uuid  header: the message id (a value, as below)
//	<key>                    one header per metadata entry
//
// NATS headers are text lines: a name is printable ASCII without
// "()/,:;<=>?@[\]{}" and a value loses leading whitespace and line breaks.
// So that every key and value arrives exactly as sent, a name that is not a
// valid header name is written as keyPrefix+base64url(name), and a value
// that would not survive (or that starts like an encoded one) as an RFC 2047
// encoded word, =?UTF-8?B?<base64>?=.
const (
	headerID    = "_watermill_message_uuid"
	keyPrefix   = "Msgkit-B64-"
	wordPrefix  = "=?UTF-8?B?"
	wordSuffix  = "?="
	natsPrefix  = "Nats-" // the server's own headers (Nats-Msg-Id, Nats-Expected-*)
	idSeparator = "-"
	// structuredContentType marks a header-less message that holds a
	// CloudEvents event in structured mode (see decode).
	structuredContentType = "application/cloudevents+json"
)

func encode(topic string, m *driver.Message) *nats.Msg {
	h := make(nats.Header, len(m.Metadata)+1)
	vals := make([]string, 1, len(m.Metadata)+1) // one allocation for every header's value slice
	vals[0] = encodeValue(m.ID)
	h[headerID] = vals[0:1:1]
	for k, v := range m.Metadata {
		vals = append(vals, encodeValue(v))
		h[encodeKey(k)] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return &nats.Msg{Subject: topic, Header: h, Data: m.Payload}
}

// cloudEvent adds to nm what the CloudEvents NATS binding's binary mode
// needs besides the ce-* headers every message has: ce-specversion and
// ce-id. It refuses a message without the type or source CloudEvents
// requires.
func cloudEvent(nm *nats.Msg, m *driver.Message) error {
	if err := cloudevents.Check(m, "ce-"); err != nil {
		return err
	}
	nm.Header["ce-specversion"] = []string{"1.0"}
	nm.Header["ce-id"] = []string{encodeValue(m.ID)}
	return nil
}

// decode rebuilds a received message. One from another producer without an
// id header takes its Nats-Msg-Id, or else stream-sequence: the same on
// every redelivery, and marked DerivedID (so that a CloudEvents producer's
// event id takes its place). A header the message carries more than once
// (a client that appended to it) becomes one metadata entry, its values
// joined with commas as HTTP reads a repeated field; decode then reports
// repeated, for the subscription to log it (repeatedHeaders).
func decode(stream string, seq uint64, h nats.Header, data []byte) (m *driver.Message, repeated bool) {
	m = &driver.Message{Payload: data, Metadata: make(map[string]string, len(h))}
	ours := false // msgkit's or Watermill's: it has the id header
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 && !hasNatsPrefix(k) {
			repeated = true
		}
		if k == headerID {
			m.ID, ours = decodeValue(vs[0]), true
			continue
		}
		if hasNatsPrefix(k) {
			if k == "Nats-Msg-Id" && m.ID == "" {
				m.ID = vs[0]
			}
			continue
		}
		m.Metadata[decodeKey(k)] = decodeValue(strings.Join(vs, ","))
	}
	if !ours && m.Metadata["ce-specversion"] == "" && m.Metadata[sdk.KeyContentType] == "" &&
		cloudevents.StructuredJSON(data) {
		// The CloudEvents NATS binding sends an event in structured mode as
		// the bare payload, with no header to say so; its readers take a
		// message without a ce-specversion header for one. The content type
		// says it to the SDK, which unpacks the event.
		m.Metadata[sdk.KeyContentType] = structuredContentType
	}
	if m.ID == "" {
		m.ID, m.DerivedID = stream+idSeparator+strconv.FormatUint(seq, 10), true
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	return m, repeated
}

// repeatedHeaders returns how many times h carries each header (other
// than the server's own) it carries more than once, or nil.
func repeatedHeaders(h nats.Header) map[string]int {
	var counts map[string]int
	for k, vs := range h {
		if len(vs) > 1 && !hasNatsPrefix(k) {
			if counts == nil {
				counts = map[string]int{}
			}
			counts[decodeKey(k)] = len(vs)
		}
	}
	return counts
}

func encodeKey(k string) string {
	if validKey(k) && !strings.HasPrefix(k, keyPrefix) && !hasNatsPrefix(k) && k != headerID {
		return k
	}
	return keyPrefix + base64.RawURLEncoding.EncodeToString([]byte(k))
}

func decodeKey(k string) string {
	if rest, ok := strings.CutPrefix(k, keyPrefix); ok {
		if b, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	return k
}

// hasNatsPrefix reports whether k names one of the server's own headers,
// which metadata must never set (Nats-Msg-Id would make the server drop
// messages as duplicates) and which are not metadata when received.
func hasNatsPrefix(k string) bool {
	return len(k) >= len(natsPrefix) && strings.EqualFold(k[:len(natsPrefix)], natsPrefix)
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < 33 || c > 126 || strings.IndexByte(`"()/,:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func encodeValue(v string) string {
	if safeValue(v) {
		return v
	}
	return wordPrefix + base64.StdEncoding.EncodeToString([]byte(v)) + wordSuffix
}

func decodeValue(v string) string {
	if strings.HasPrefix(v, wordPrefix) && strings.HasSuffix(v, wordSuffix) && len(v) >= len(wordPrefix)+len(wordSuffix) {
		if b, err := base64.StdEncoding.DecodeString(v[len(wordPrefix) : len(v)-len(wordSuffix)]); err == nil {
			return string(b)
		}
	}
	return v
}

// safeValue reports whether v arrives unchanged as a header value: no line
// breaks or NULs, no whitespace at either end, nothing that reads as an
// encoded word.
func safeValue(v string) bool {
	if v == "" {
		return true
	}
	if isSpace(v[0]) || isSpace(v[len(v)-1]) || strings.HasPrefix(v, "=?") {
		return false
	}
	return strings.IndexAny(v, "\r\n\x00") < 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
