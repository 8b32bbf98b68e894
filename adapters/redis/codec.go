package redis

import (
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// Stream entry layout, readable by any Redis client:
//
//	id       the message id
//	payload  the payload bytes
//	h:<key>  one field per metadata entry
//
// Redis strings are binary-safe, so payload and metadata need no encoding.
const (
	fieldID      = "id"
	fieldPayload = "payload"
	headerPrefix = "h:"
)

func encode(m *message.Message) []any {
	values := make([]any, 0, 4+2*len(m.Metadata))
	values = append(values, fieldID, m.UUID, fieldPayload, []byte(m.Payload))
	for k, v := range m.Metadata {
		values = append(values, headerField(k), v)
	}
	return values
}

// headerField is headerPrefix+k, without an allocation for the standard
// attributes every message carries.
func headerField(k string) string {
	switch k {
	case sdk.KeyTime:
		return headerPrefix + sdk.KeyTime
	case sdk.KeyEventType:
		return headerPrefix + sdk.KeyEventType
	case sdk.KeyContentType:
		return headerPrefix + sdk.KeyContentType
	case sdk.KeyCorrelationID:
		return headerPrefix + sdk.KeyCorrelationID
	case sdk.KeyCausationID:
		return headerPrefix + sdk.KeyCausationID
	case sdk.KeySource:
		return headerPrefix + sdk.KeySource
	}
	return headerPrefix + k
}

// decode rebuilds a message. Fields written by other producers that follow
// no part of the layout become metadata under their own names, so such an
// entry is still delivered instead of failing forever.
func decode(values map[string]any) *message.Message {
	m := message.NewMessage("", nil)
	for k, v := range values {
		s, _ := v.(string)
		switch {
		case k == fieldID:
			m.UUID = s
		case k == fieldPayload:
			m.Payload = []byte(s)
		case strings.HasPrefix(k, headerPrefix):
			m.Metadata[k[len(headerPrefix):]] = s
		default:
			m.Metadata[k] = s
		}
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	return m
}
