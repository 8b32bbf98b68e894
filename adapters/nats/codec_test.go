package nats

import (
	"bytes"
	"net/textproto"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/sdk/driver"
)

// wire writes headers as nats.go does (PublishMsg: "key: value" lines,
// each value trimmed and its line breaks made spaces) and reads them back
// as a receiver does. Publishing refuses a key outside printable ASCII or
// holding one of nats.go's forbidden characters.
func wire(t *testing.T, h nats.Header) nats.Header {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		if !validKey(k) {
			t.Fatalf("encoded key %q would be refused by nats.go", k)
		}
		for _, v := range vs {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(textproto.TrimString(v))
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	got, err := nats.DecodeHeadersMsg(b.Bytes())
	if err != nil {
		t.Fatalf("decode headers: %v", err)
	}
	return got
}

// FuzzMetadataRoundTrips checks that any metadata key and value arrives
// exactly as sent, whatever bytes they hold.
func FuzzMetadataRoundTrips(f *testing.F) {
	for _, seed := range [][2]string{
		{"plain", "value"}, {"with spaces", "  padded  "}, {"ключ", "значение"}, {"a:b", "x\r\ny"},
		{"Nats-Msg-Id", "1"}, {"Msgkit-B64-eA", "=?UTF-8?B?eA==?="}, {"", ""}, {"k", "\x00"}, {"_watermill_message_uuid", "spoof"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		sent := &driver.Message{ID: "id-1", Payload: []byte("p"), Metadata: map[string]string{k: v, "ce-type": "t"}}
		m := encode("topic", sent)
		got, _ := decode("s", 1, wire(t, m.Header), m.Data)
		if got.ID != "id-1" {
			t.Fatalf("id: sent id-1, got %q (metadata %q)", got.ID, k)
		}
		if len(got.Metadata) != len(sent.Metadata) || got.Metadata[k] != v || got.Metadata["ce-type"] != "t" {
			t.Fatalf("metadata %q=%q arrived as %q", k, v, got.Metadata)
		}
	})
}

func TestObjectNamesOfDistinctTopicsDiffer(t *testing.T) {
	seen := map[string]string{}
	long := strings.Repeat("orders", 60)
	for _, topic := range []string{"orders.created", "orders_created", "orders-created", "orders.created.dlq", "orders.created_dlq", "ORDERS",
		long + "a", long + "b", long + ".a", strings.Repeat("x", 255), strings.Repeat("x", 256)} {
		name := objectName(topic)
		if strings.ContainsAny(name, ".*> \t/\\") {
			t.Errorf("name %q of %q holds a character stream names may not", name, topic)
		}
		if len(name) > 255 {
			t.Errorf("name of %d-byte topic %.40q... is %d bytes; JetStream takes at most 255", len(topic), topic, len(name))
		}
		if other, ok := seen[name]; ok {
			t.Errorf("topics %q and %q share the name %q", other, topic, name)
		}
		seen[name] = topic
	}
}
