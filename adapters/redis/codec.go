package redis

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/vmihailenco/msgpack"

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

// The stock watermill-redisstream layout (its DefaultMarshallerUnmarshaller),
// read always and written with wire_format: watermill:
//
//	_watermill_message_uuid  the message id
//	payload                  the payload bytes
//	metadata                 every metadata entry, one msgpack map
const (
	fieldWatermillID       = "_watermill_message_uuid"
	fieldWatermillMetadata = "metadata"
)

// entryFields writes the field and value arguments of a batch's XADDs, in
// one layout. The metadata of a message that shares its map with the
// message before (driver.SameMetadata) is not encoded again: its fields
// are the ones written for that message.
type entryFields struct {
	watermill bool
	prev      *driver.Message
	values    []string // prev's fields and values
}

// Where encode and encodeWatermill put the metadata among the fields and
// values they return.
const (
	metadataFrom      = 4 // msgkit's layout: every pair after the id and payload
	watermillMetadata = 3 // watermill's: the value of the metadata field
)

// of returns m's fields and values.
func (f *entryFields) of(m *driver.Message) ([]string, error) {
	shared := f.prev != nil && driver.SameMetadata(m, f.prev)
	var values []string
	switch {
	case f.watermill && shared:
		values = []string{fieldWatermillID, m.ID, fieldWatermillMetadata, f.values[watermillMetadata], fieldPayload, bytesString(m.Payload)}
	case f.watermill:
		var err error
		if values, err = encodeWatermill(m); err != nil {
			return nil, err
		}
	case shared:
		values = make([]string, 0, len(f.values))
		values = append(values, fieldID, m.ID, fieldPayload, bytesString(m.Payload))
		values = append(values, f.values[metadataFrom:]...)
	default:
		values = encode(m)
	}
	f.prev, f.values = m, values
	return values, nil
}

// encodeWatermill writes m in watermill-redisstream's layout, as XADD's
// field and value arguments.
func encodeWatermill(m *driver.Message) ([]string, error) {
	var md []byte
	if len(m.Metadata) > 0 {
		var err error
		if md, err = msgpack.Marshal(m.Metadata); err != nil {
			return nil, fmt.Errorf("encode the metadata of message %s for wire_format watermill: %w", m.ID, err)
		}
	}
	return []string{fieldWatermillID, m.ID, fieldWatermillMetadata, bytesString(md), fieldPayload, bytesString(m.Payload)}, nil
}

// encode writes m in msgkit's layout, as XADD's field and value
// arguments.
func encode(m *driver.Message) []string {
	values := make([]string, 0, 4+2*len(m.Metadata))
	values = append(values, fieldID, m.ID, fieldPayload, bytesString(m.Payload))
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

// decode rebuilds into m the message of stream entry entryID, in either
// layout: an entry with a _watermill_message_uuid field and no id field
// is watermill-redisstream's. Fields written by
// other producers that follow no part of the layout become metadata under
// their own names, so such an entry is still delivered instead of failing
// forever; an entry without an id field takes the entry id, which is the
// same on every redelivery.
func decode(m *driver.Message, entryID string, values map[string]any) {
	if wid, ok := values[fieldWatermillID].(string); ok && values[fieldID] == nil {
		decodeWatermill(m, entryID, wid, values)
		return
	}
	*m = driver.Message{Metadata: make(map[string]string, len(values))}
	for k, v := range values {
		s, _ := v.(string)
		switch {
		case k == fieldID:
			m.ID = s
		case k == fieldPayload:
			m.Payload = stringBytes(s)
		case strings.HasPrefix(k, headerPrefix):
			m.Metadata[k[len(headerPrefix):]] = s
		default:
			m.Metadata[k] = s
		}
	}
	if m.ID == "" {
		m.ID, m.DerivedID = entryID, true
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
}

// decodeWatermill reads watermill-redisstream's layout. Metadata that is
// not a msgpack map of strings is kept, as it came, under the metadata
// key, so the entry is still delivered and nothing is dropped.
func decodeWatermill(m *driver.Message, entryID, id string, values map[string]any) {
	*m = driver.Message{ID: id, Metadata: map[string]string{}}
	for k, v := range values {
		s, _ := v.(string)
		switch k {
		case fieldWatermillID:
		case fieldPayload:
			m.Payload = stringBytes(s)
		case fieldWatermillMetadata:
			if s == "" {
				continue
			}
			md := map[string]string{}
			if err := msgpack.Unmarshal([]byte(s), &md); err != nil {
				m.Metadata[k] = s
				continue
			}
			for mk, mv := range md {
				m.Metadata[mk] = mv
			}
		default:
			m.Metadata[k] = s
		}
	}
	if m.ID == "" {
		m.ID, m.DerivedID = entryID, true
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
}

// stringBytes returns the bytes of s without copying them. Only for a
// string that nothing else reads: go-redis allocates each reply value
// afresh, and the reply is dropped once its entry is decoded, so the
// payload is the only reference and a handler may change it freely.
func stringBytes(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// bytesString returns b as a string without copying it, for an argument
// written to the connection before the publish that owns b returns.
func bytesString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
