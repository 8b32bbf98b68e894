package kafka

import (
	"fmt"
	"strconv"
	"strings"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/adapters/internal/cloudevents"
	"github.com/msgkit/msgkit/internal/slab"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The wire format is Watermill's (metadata as record headers, the message id
// in header _watermill_message_uuid, the payload as the value), so Watermill
// services and non-Go consumers read it as is. The ordering key is also the
// record key, which is what puts one key on one partition.

// reservedIDs refuses each message whose metadata sets the id header
// (_watermill_message_uuid) to something other than its id: the header
// carries the id, and a second one would replace it on receipt.
func reservedIDs(topic string, msgs []*driver.Message) driver.BatchError {
	var refused driver.BatchError
	for i, m := range msgs {
		if id, ok := m.Metadata[wkafka.UUIDHeaderKey]; ok && id != m.ID {
			if refused == nil {
				refused = make(driver.BatchError, len(msgs))
			}
			refused[i] = fmt.Errorf("kafka: publish to %q: message %s: metadata key %q is reserved: the header carries the message id (as watermill-kafka reads it), and this one holds %q; set Message.ID instead",
				topic, m.ID, wkafka.UUIDHeaderKey, id)
		}
	}
	return refused
}

// toRecords encodes a batch. The records, their headers and every header
// value are cut from three allocations for the whole batch (four for
// batches of more than one), not three per message: at several hundred
// thousand messages a second the garbage collector's share of the publish
// path is what sets it apart from a raw producer.
func toRecords(topic string, msgs []*driver.Message) []*kgo.Record {
	size, count := 0, 0
	for i, m := range msgs {
		size += len(m.ID)
		count += len(m.Metadata) + 1
		if i > 0 && driver.SameMetadata(m, msgs[i-1]) {
			continue // its headers are the message before's
		}
		for _, v := range m.Metadata {
			size += len(v)
		}
	}
	buf := make([]byte, 0, size)
	cut := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return buf[start:len(buf):len(buf)]
	}
	headers := make([]kgo.RecordHeader, 0, count)
	out := slab.New[kgo.Record](len(msgs))
	var before []kgo.RecordHeader // the metadata headers of the message before
	for i, m := range msgs {
		first := len(headers)
		headers = append(headers, kgo.RecordHeader{Key: wkafka.UUIDHeaderKey, Value: cut(m.ID)})
		if i > 0 && driver.SameMetadata(m, msgs[i-1]) {
			headers = append(headers, before...) // within count: before stays where it is
		} else {
			for k, v := range m.Metadata {
				headers = append(headers, kgo.RecordHeader{Key: k, Value: cut(v)})
			}
		}
		before = headers[first+1:]
		r := out[i]
		*r = kgo.Record{Topic: topic, Value: m.Payload, Headers: headers[first:len(headers):len(headers)]}
		if m.OrderingKey != "" {
			r.Key = []byte(m.OrderingKey)
		}
	}
	return out
}

// toCloudEvents encodes a batch in the CloudEvents Kafka binding's binary
// mode: ce_specversion 1.0, ce_id the message id, each ce-<attr> metadata
// entry as header ce_<attr>, content-type as is; other metadata stays as
// plain headers, and _watermill_message_uuid still carries the id for
// Watermill and msgkit consumers. CloudEvents requires a type and a source:
// a message without EventType or Source is refused, saying so, rather than
// sent as an event a CloudEvents consumer would reject.
// refused[i] is set, and out[i] nil, for each message refused.
func toCloudEvents(topic string, msgs []*driver.Message) (out []*kgo.Record, refused []error) {
	out = make([]*kgo.Record, len(msgs))
	refused = make([]error, len(msgs))
	for i, m := range msgs {
		if err := cloudevents.Check(m, "ce_"); err != nil {
			refused[i] = err
			continue
		}
		headers := make([]kgo.RecordHeader, 0, len(m.Metadata)+3)
		headers = append(headers,
			kgo.RecordHeader{Key: wkafka.UUIDHeaderKey, Value: []byte(m.ID)},
			kgo.RecordHeader{Key: "ce_specversion", Value: []byte("1.0")},
			kgo.RecordHeader{Key: "ce_id", Value: []byte(m.ID)})
		for k, v := range m.Metadata {
			if k == "ce-id" || k == "ce-specversion" {
				continue // written above; Check refused any other value
			}
			if attr, ok := strings.CutPrefix(k, "ce-"); ok {
				k = "ce_" + attr
			}
			headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		r := &kgo.Record{Topic: topic, Value: m.Payload, Headers: headers}
		if m.OrderingKey != "" {
			r.Key = []byte(m.OrderingKey)
		}
		out[i] = r
	}
	return out, refused
}

// fromRecords decodes a batch into msgs, one record each, by fromRecord.
// The text of every header value of the batch is copied into one string,
// which each message's id and metadata values are cut from: one allocation
// a batch instead of one a header. A value kept keeps the batch's text
// alive, as the payload keeps the fetch's buffer.
// It returns whether any record carries a header more than once (see
// repeatedHeaders).
func fromRecords(msgs []driver.Message, records []*kgo.Record) (repeated bool) {
	size := 0
	for _, r := range records {
		for _, h := range r.Headers {
			size += len(h.Value)
		}
	}
	var b strings.Builder
	b.Grow(size)
	for _, r := range records {
		for _, h := range r.Headers {
			b.Write(h.Value)
		}
	}
	text := b.String()
	for i, r := range records {
		if fromRecord(&msgs[i], r, &text) {
			repeated = true
		}
	}
	return repeated
}

// repeatedHeaders returns how many times r carries each header it carries
// more than once, or nil.
func repeatedHeaders(r *kgo.Record) map[string]int {
	var counts map[string]int
	for i, h := range r.Headers {
		for _, earlier := range r.Headers[:i] {
			if earlier.Key == h.Key {
				if counts == nil {
					counts = map[string]int{}
				}
				counts[h.Key] = max(counts[h.Key], 1) + 1
				break
			}
		}
	}
	return counts
}

// fromRecord decodes a record into m, taking its header values from the
// start of *text, which it then moves past. It never fails: a record that
// follows no part of the format is delivered as it is. A record without an
// id gets one derived from its position, stable across redeliveries (so an
// inbox still deduplicates it) and marked DerivedID (so that a CloudEvents
// producer's event id takes its place); a record key without an ordering-key
// header becomes the ordering key. A header the record carries more than
// once keeps its last value, as watermill-kafka and Kafka's lastHeader
// read it; fromRecord then returns true, for the subscription to log it.
func fromRecord(m *driver.Message, r *kgo.Record, text *string) (repeated bool) {
	*m = driver.Message{Metadata: make(map[string]string, len(r.Headers)), Payload: r.Value}
	ids := 0
	for _, h := range r.Headers {
		v := (*text)[:len(h.Value)]
		*text = (*text)[len(h.Value):]
		if h.Key == wkafka.UUIDHeaderKey {
			m.ID = v
			ids++
			continue
		}
		m.Metadata[h.Key] = v
	}
	// Without a repeat every header made an id or an entry of its own.
	repeated = ids > 1 || len(m.Metadata)+ids < len(r.Headers)
	if m.ID == "" {
		m.ID, m.DerivedID = r.Topic+"-"+strconv.Itoa(int(r.Partition))+"-"+strconv.FormatInt(r.Offset, 10), true
	}
	if _, ok := m.Metadata[sdk.KeyOrderingKey]; !ok && len(r.Key) > 0 {
		m.Metadata[sdk.KeyOrderingKey] = string(r.Key)
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	return repeated
}
