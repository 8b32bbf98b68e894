package kafka

import (
	"fmt"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// The wire format is Watermill's (metadata as record headers, the message id
// in header _watermill_message_uuid, the payload as the value), so Watermill
// services and non-Go consumers read it as is. The ordering key is also the
// record key, which is what puts one key on one partition.

func toRecord(topic string, m *message.Message) *sarama.ProducerMessage {
	return record(topic, m.UUID, m.Payload, m.Metadata[sdk.KeyOrderingKey], len(m.Metadata), func(yield func(k, v string) bool) {
		for k, v := range m.Metadata {
			if !yield(k, v) {
				return
			}
		}
	})
}

func record(topic, id string, payload []byte, key string, n int, metadata func(yield func(k, v string) bool)) *sarama.ProducerMessage {
	// Every header's bytes are cut from one buffer: one allocation instead of
	// two per header.
	size := len(wkafka.UUIDHeaderKey) + len(id)
	metadata(func(k, v string) bool { size += len(k) + len(v); return true })
	buf := make([]byte, 0, size)
	cut := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return buf[start:len(buf):len(buf)]
	}
	headers := make([]sarama.RecordHeader, 0, n+1)
	headers = append(headers, sarama.RecordHeader{Key: cut(wkafka.UUIDHeaderKey), Value: cut(id)})
	metadata(func(k, v string) bool {
		headers = append(headers, sarama.RecordHeader{Key: cut(k), Value: cut(v)})
		return true
	})
	r := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(payload), Headers: headers}
	if key != "" {
		r.Key = sarama.StringEncoder(key)
	}
	return r
}

// codec is the watermill-kafka Unmarshaler the subscribers use. It never
// fails: watermill-kafka stops the partition's consumer on an unmarshal error
// and restarts it at the same offset, so one foreign record would block the
// partition forever.
type codec struct{}

func (codec) Unmarshal(r *sarama.ConsumerMessage) (*message.Message, error) {
	m := message.NewMessage("", nil)
	if len(r.Headers) > 9 {
		m.Metadata = make(message.Metadata, len(r.Headers))
	} // else NewMessage's map holds 8 entries without growing
	m.UUID, m.Payload = readRecord(r, m.Metadata)
	return m, nil
}

// readRecord fills md with r's headers and returns the message id and the
// payload. A record without an id gets one derived from its position,
// stable across redeliveries (so an inbox still deduplicates it).
func readRecord(r *sarama.ConsumerMessage, md map[string]string) (id string, payload []byte) {
	for _, h := range r.Headers {
		if h == nil {
			continue
		}
		if string(h.Key) == wkafka.UUIDHeaderKey {
			id = string(h.Value)
			continue
		}
		md[headerKey(h.Key)] = string(h.Value)
	}
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	}
	if _, ok := md[sdk.KeyOrderingKey]; !ok && len(r.Key) > 0 {
		md[sdk.KeyOrderingKey] = string(r.Key)
	}
	payload = r.Value
	if payload == nil {
		payload = []byte{}
	}
	return id, payload
}

// headerKey is string(k) without an allocation for the standard attributes
// most records carry.
func headerKey(k []byte) string {
	switch string(k) { // compared without a conversion
	case sdk.KeyTime:
		return sdk.KeyTime
	case sdk.KeyEventType:
		return sdk.KeyEventType
	case sdk.KeySource:
		return sdk.KeySource
	case sdk.KeyContentType:
		return sdk.KeyContentType
	case sdk.KeyCorrelationID:
		return sdk.KeyCorrelationID
	case sdk.KeyCausationID:
		return sdk.KeyCausationID
	case sdk.KeyOrderingKey:
		return sdk.KeyOrderingKey
	case sdk.KeyTraceParent:
		return sdk.KeyTraceParent
	}
	return string(k)
}
