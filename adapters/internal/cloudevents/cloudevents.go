// Package cloudevents holds the CloudEvents rules drivers share: what
// every driver's CloudEvents wire format (wire_format: cloudevents) checks
// of a message before writing it as an event in its broker's binding, and
// how to recognise a structured-mode event that arrives without a content
// type.
package cloudevents

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Check returns why m cannot be written as an event of a binding whose
// attribute headers are named prefix+attribute (ce- on NATS, ce_ on Kafka,
// cloudEvents: on AMQP), or nil.
//
// CloudEvents requires a type and a source. Metadata ce-id and
// ce-specversion, where present, must be what the binding writes: the
// message id and 1.0. And a metadata key already
// named in the binding's own prefix, where that is not msgkit's ce-,
// cannot be carried exactly: every consumer reads it back as the attribute
// of that name (msgkit as ce-<attribute>), and beside msgkit's spelling of
// the same attribute, one of the two values would be lost.
func Check(m *driver.Message, prefix string) error {
	for _, k := range []string{sdk.KeyEventType, sdk.KeySource} {
		if m.Metadata[k] == "" {
			return fmt.Errorf("message %s has no %s, which CloudEvents requires (wire_format: cloudevents): set Message.%s",
				m.ID, k, map[string]string{sdk.KeyEventType: "EventType", sdk.KeySource: "Source"}[k])
		}
	}
	// The binding writes the event's id (the message id) and specversion
	// (1.0) itself: a metadata entry holding another value would be
	// overwritten, or sent beside the attribute for a consumer to choose.
	// The same value, as a relayed event carries, is the attribute as sent.
	if v, ok := m.Metadata["ce-id"]; ok && v != m.ID {
		return fmt.Errorf("message %s: metadata key \"ce-id\" holds %q, but wire_format: cloudevents writes the event id from the message id: set Message.ID to %q, or remove the key",
			m.ID, v, v)
	}
	if v, ok := m.Metadata["ce-specversion"]; ok && v != "1.0" {
		return fmt.Errorf("message %s: metadata key \"ce-specversion\" holds %q, but wire_format: cloudevents writes CloudEvents 1.0 events: remove the key",
			m.ID, v)
	}
	if prefix == "ce-" {
		return nil
	}
	for k := range m.Metadata {
		if attr, ok := strings.CutPrefix(k, prefix); ok {
			return fmt.Errorf("message %s: metadata key %q is named as this broker's CloudEvents binding names attribute %q (%s<attribute>), so consumers would read it as that attribute (msgkit as %q), not as sent (wire_format: cloudevents): name it %q to send the attribute, or choose a name without the prefix",
				m.ID, k, attr, prefix, "ce-"+strings.ToLower(attr), "ce-"+strings.ToLower(attr))
		}
	}
	return nil
}

// StructuredJSON reports whether payload is a CloudEvents event in the
// JSON format: an object holding, as strings, the attributes every event
// has (specversion, id, type and source). A binding whose structured mode
// sends no content type (NATS) is read by this.
func StructuredJSON(payload []byte) bool {
	i := 0
	for i < len(payload) && (payload[i] == ' ' || payload[i] == '\t' || payload[i] == '\r' || payload[i] == '\n') {
		i++
	}
	if i == len(payload) || payload[i] != '{' {
		return false // not an object: no need to parse it
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(payload, &ev) != nil {
		return false
	}
	for _, attr := range []string{"specversion", "id", "type", "source"} {
		var s string
		if json.Unmarshal(ev[attr], &s) != nil || s == "" {
			return false
		}
	}
	return true
}
