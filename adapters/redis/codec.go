package redis

import (
	"strings"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
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

func encode(m *driver.Message) []any {
	values := make([]any, 0, 4+2*len(m.Metadata))
	values = append(values, fieldID, m.ID, fieldPayload, m.Payload)
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

// decode rebuilds into m the message of stream entry entryID. Fields written by
// other producers that follow no part of the layout become metadata under
// their own names, so such an entry is still delivered instead of failing
// forever; an entry without an id field takes the entry id, which is the
// same on every redelivery.
func decode(m *driver.Message, entryID string, values map[string]any) {
	*m = driver.Message{Metadata: make(map[string]string, len(values))}
	for k, v := range values {
		s, _ := v.(string)
		switch {
		case k == fieldID:
			m.ID = s
		case k == fieldPayload:
			m.Payload = []byte(s)
		case strings.HasPrefix(k, headerPrefix):
			m.Metadata[k[len(headerPrefix):]] = s
		default:
			m.Metadata[k] = s
		}
	}
	if m.ID == "" {
		m.ID = entryID
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
}
