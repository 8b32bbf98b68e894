package cloudevents

import (
	"strings"
	"testing"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func event(md map[string]string) *driver.Message {
	full := map[string]string{sdk.KeyEventType: "order.created", sdk.KeySource: "orders"}
	for k, v := range md {
		full[k] = v
	}
	return &driver.Message{ID: "m-1", Metadata: full}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name   string
		m      *driver.Message
		prefix string
		want   string // in the error; "" for none
	}{
		{"an event with type and source", event(nil), "ce_", ""},
		{"msgkit's own attribute names", event(map[string]string{"ce-subject": "x", "trace": "t"}), "cloudEvents:", ""},
		{"no type", &driver.Message{ID: "m-1", Metadata: map[string]string{sdk.KeySource: "orders"}}, "ce_", "set Message.EventType"},
		{"no source", &driver.Message{ID: "m-1", Metadata: map[string]string{sdk.KeyEventType: "t"}}, "ce-", "set Message.Source"},
		{"a key in Kafka's binding prefix", event(map[string]string{"ce_subject": "x"}), "ce_", `name it "ce-subject"`},
		{"a key in AMQP's binding prefix", event(map[string]string{"cloudEvents:Type": "x"}), "cloudEvents:", `metadata key "cloudEvents:Type"`},
		{"another binding's prefix is carried as it is", event(map[string]string{"cloudEvents:type": "x"}), "ce_", ""},
		{"on NATS the binding's prefix is msgkit's", event(map[string]string{"ce-subject": "x"}), "ce-", ""},
		{"a relayed event's own id and specversion", event(map[string]string{"ce-id": "m-1", "ce-specversion": "1.0"}), "ce_", ""},
		{"an id other than the message's", event(map[string]string{"ce-id": "evt-7"}), "ce-", `set Message.ID to "evt-7"`},
		{"an id other than the message's, AMQP", event(map[string]string{"ce-id": "evt-7"}), "cloudEvents:", `metadata key "ce-id" holds "evt-7"`},
		{"another specversion", event(map[string]string{"ce-specversion": "0.3"}), "ce_", "writes CloudEvents 1.0"},
	} {
		err := Check(c.m, c.prefix)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error saying %s", c.name, err, c.want)
		}
	}
}

// StructuredJSON takes a JSON object holding specversion, id, type and
// source as strings for an event, and nothing else.
func TestStructuredJSONNeedsEveryRequiredAttribute(t *testing.T) {
	for payload, want := range map[string]bool{
		`{"specversion":"1.0","id":"e","type":"t","source":"/s","data":{"a":1}}`:       true,
		" \n\t{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"t\",\"source\":\"/s\"}": true,
		`{"specversion":"1.0","id":"e","type":"t"}`:                                    false,
		`{"specversion":"1.0","id":7,"type":"t","source":"/s"}`:                        false,
		`{"specversion":"1.0","id":"","type":"t","source":"/s"}`:                       false,
		`{"id":"e","type":"t","source":"/s"}`:                                          false,
		`[{"specversion":"1.0","id":"e","type":"t","source":"/s"}]`:                    false,
		`{"specversion":"1.0","id":"e","type":"t","source":"/s"`:                       false,
		`plain text`: false,
		``:           false,
	} {
		if got := StructuredJSON([]byte(payload)); got != want {
			t.Errorf("StructuredJSON(%q) = %v, want %v", payload, got, want)
		}
	}
}
