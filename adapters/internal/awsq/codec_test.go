package awsq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func roundTrip(t *testing.T, m *driver.Message) (Encoded, *driver.Message) {
	t.Helper()
	e, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Attributes) > MaxAttributes {
		t.Fatalf("encoded %d attributes, SQS takes %d", len(e.Attributes), MaxAttributes)
	}
	return e, Decode(e.Body, e.Attributes, "sqs-id")
}

func TestPayloadsRoundTrip(t *testing.T) {
	for name, payload := range map[string][]byte{
		"text":         []byte(`{"order":42}`),
		"empty":        {},
		"binary":       {0x00, 0xff, 0xfe, 0x80, 0x01},
		"control char": []byte("a\x01b"), // valid UTF-8 that SQS refuses in a body
	} {
		t.Run(name, func(t *testing.T) {
			e, got := roundTrip(t, newMessage("id-1", payload))
			if !bytes.Equal(got.Payload, payload) || got.ID != "id-1" {
				t.Fatalf("payload %q (id id-1) came back as %q (id %s)", payload, got.Payload, got.ID)
			}
			if name == "text" && e.Body != string(payload) {
				t.Fatalf("a text payload must be the body as is, for other consumers; body %q", e.Body)
			}
			if e.Body == "" {
				t.Fatal("SQS refuses an empty body")
			}
		})
	}
}

func TestStandardAttributesStayNativeWhenMetadataOverflows(t *testing.T) {
	m := newMessage("id-1", []byte("x"))
	m.Metadata[sdk.KeyEventType] = "order.created"
	m.Metadata[sdk.KeyCorrelationID] = "c-1"
	m.Metadata[sdk.KeyTraceParent] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i := 0; i < 20; i++ {
		m.Metadata[fmt.Sprintf("a-%02d", i)] = fmt.Sprint(i)
	}
	m.Metadata["AWS.reserved"] = "packed"
	m.Metadata["has space"] = "packed"
	m.Metadata["empty"] = ""
	m.Metadata["ünïcode"] = "välue ✓"
	e, got := roundTrip(t, m)
	for _, k := range []string{sdk.KeyEventType, sdk.KeyCorrelationID, sdk.KeyTraceParent, AttrID} {
		if _, ok := e.Attributes[k]; !ok {
			t.Errorf("%q must be a native attribute, for non-Go consumers", k)
		}
	}
	if _, ok := e.Attributes[AttrPacked]; !ok {
		t.Fatal("metadata beyond the limit must be packed")
	}
	for k, v := range m.Metadata {
		if got.Metadata[k] != v {
			t.Errorf("metadata %q: sent %q, got %q", k, v, got.Metadata[k])
		}
	}
	if len(got.Metadata) != len(m.Metadata) {
		t.Errorf("sent %d metadata entries, got %d: %v", len(m.Metadata), len(got.Metadata), got.Metadata)
	}
}

func TestForeignMessagesDecodeAsIs(t *testing.T) {
	got := Decode("aGVsbG8=", map[string]string{"ce-type": "ping"}, "sqs-id")
	if string(got.Payload) != "aGVsbG8=" || got.ID != "sqs-id" || !got.DerivedID || got.Metadata["ce-type"] != "ping" {
		t.Fatalf("a message without msgkit attributes must be taken as is, with SQS's id marked derived: %q %s (derived %v) %v", got.Payload, got.ID, got.DerivedID, got.Metadata)
	}
	if got := Decode("x", map[string]string{AttrID: "m-1"}, "sqs-id"); got.ID != "m-1" || got.DerivedID {
		t.Fatalf("a message with its own id must keep it, not derived: %s (derived %v)", got.ID, got.DerivedID)
	}
	got = Decode("x", map[string]string{AttrPacked: "not json"}, "sqs-id")
	if got.Metadata[AttrPacked] != "not json" {
		t.Fatalf("a packed attribute that is not JSON must be kept, not dropped: %v", got.Metadata)
	}
}

func TestOversizedMessageIsRefused(t *testing.T) {
	_, err := Encode(newMessage("id-1", bytes.Repeat([]byte{0xff}, MaxPayloadBytes+40<<10)))
	if err == nil || !strings.Contains(err.Error(), "base64") || !strings.Contains(err.Error(), "262144") {
		t.Fatalf("a binary payload too big once base64-encoded must be refused with the reason, got %v", err)
	}
	if _, err := Encode(newMessage("id-1", bytes.Repeat([]byte{0xff}, MaxPayloadBytes))); err != nil {
		t.Fatalf("a binary payload of the declared maximum must fit: %v", err)
	}
}

func TestQueueNames(t *testing.T) {
	if got := QueueName("orders.created", "billing", false); got != "orders-created-billing" {
		t.Errorf("got %q", got)
	}
	if got := QueueName("orders", "", true); got != "orders.fifo" {
		t.Errorf("got %q", got)
	}
	long1, long2 := strings.Repeat("a", 100)+"1", strings.Repeat("a", 100)+"2"
	n1, n2 := QueueName(long1, "g", true), QueueName(long2, "g", true)
	if n1 == n2 {
		t.Fatalf("distinct long names must stay distinct: both %q", n1)
	}
	for _, n := range []string{n1, n2} {
		if len(n)+len("-dlq") > 80 || !strings.HasSuffix(n, ".fifo") {
			t.Fatalf("%q: a queue name with its -dlq suffix must fit SQS's 80 characters and keep .fifo", n)
		}
	}
}

func TestBatchResultCountsUnmentionedEntriesAsFailed(t *testing.T) {
	errs := BatchResult(3, nil, []string{"0"}, map[string]string{"2": "throttled"})
	if errs[0] != nil || errs[1] == nil || errs[2] == nil || !strings.Contains(errs[2].Error(), "throttled") {
		t.Fatalf("want entry 0 sent, 1 unaccounted (failed), 2 failed with its reason; got %v", errs)
	}
	errs = BatchResult(2, fmt.Errorf("boom"), nil, nil)
	if errs[0] == nil || errs[1] == nil {
		t.Fatalf("a failed call fails every entry, got %v", errs)
	}
}

func TestSplitRespectsCountAndSize(t *testing.T) {
	small := Encoded{Body: "x"}
	var entries []Encoded
	for i := 0; i < 25; i++ {
		entries = append(entries, small)
	}
	var sizes []int
	for _, p := range split(entries) {
		sizes = append(sizes, len(p.entries))
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Fatalf("25 small entries must split 10+10+5, got %v", sizes)
	}
	big := Encoded{Body: strings.Repeat("x", 100<<10)}
	sizes = nil
	for _, p := range split([]Encoded{big, big, big, small}) {
		sizes = append(sizes, len(p.entries))
		if p.size > MaxMessageBytes {
			t.Fatalf("a batch of %d bytes exceeds the %d-byte request limit", p.size, MaxMessageBytes)
		}
	}
	if fmt.Sprint(sizes) != "[2 2]" {
		t.Fatalf("three 100 KiB entries and a small one must split by size 2+2, got %v", sizes)
	}
}

func newMessage(id string, payload []byte) *driver.Message {
	return &driver.Message{ID: id, Payload: payload, Metadata: map[string]string{}}
}

// Attributes of every SQS data type a non-Go producer may send arrive as
// metadata: none is dropped.
func TestReceivedAttributesOfEveryType(t *testing.T) {
	got := Attributes(map[string]types.MessageAttributeValue{
		"s":   {DataType: aws.String("String"), StringValue: aws.String("Zürich")},
		"n":   {DataType: aws.String("Number"), StringValue: aws.String("12.50")},
		"nl":  {DataType: aws.String("Number.float"), StringValue: aws.String("1e3")},
		"b":   {DataType: aws.String("Binary"), BinaryValue: []byte{0, 0xff}},
		"bl":  {DataType: aws.String("Binary.gzip"), BinaryValue: []byte("x")},
		"nil": {DataType: aws.String("String")},
	})
	want := map[string]string{"s": "Zürich", "n": "12.50", "nl": "1e3", "b": "AP8=", "bl": "eA=="}
	if !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A queue subscribed to an SNS topic without raw delivery receives each
// message wrapped in SNS's JSON envelope; it is unwrapped, so handlers see
// the message as published, with its id and metadata.
func TestSNSEnvelopeIsUnwrapped(t *testing.T) {
	sent := &driver.Message{ID: "m-1", Payload: []byte{0, 0xff}, Metadata: map[string]string{"city": "Zürich", sdk.KeyEventType: "invoice.paid"}}
	e, err := Encode(sent)
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string]any{}
	for k, v := range e.Attributes {
		attrs[k] = map[string]string{"Type": "String", "Value": v}
	}
	body, _ := json.Marshal(map[string]any{"Type": "Notification", "MessageId": "sns-42", "TopicArn": "arn:aws:sns:us-east-1:000000000000:invoices",
		"Message": e.Body, "Timestamp": "2026-12-05T10:00:00.000Z", "MessageAttributes": attrs})
	got := Decode(string(body), map[string]string{}, "sqs-7")
	if got.ID != "m-1" || !bytes.Equal(got.Payload, sent.Payload) || !maps.Equal(got.Metadata, sent.Metadata) {
		t.Fatalf("got %q %q %v, want the message as published", got.ID, got.Payload, got.Metadata)
	}
	// From a non-Go producer: the SNS MessageId is the id.
	body, _ = json.Marshal(map[string]any{"Type": "Notification", "MessageId": "sns-43", "TopicArn": "arn:aws:sns:us-east-1:0:t", "Message": "hello"})
	if got := Decode(string(body), nil, "sqs-8"); got.ID != "sns-43" || string(got.Payload) != "hello" {
		t.Fatalf("got %q %q", got.ID, got.Payload)
	}
	// A JSON payload that only looks a bit like one stays as it is.
	plain := `{"TopicArn":"x","Type":"Order"}`
	if got := Decode(plain, nil, "sqs-9"); string(got.Payload) != plain || got.ID != "sqs-9" {
		t.Fatalf("got %q %q", got.ID, got.Payload)
	}
}
