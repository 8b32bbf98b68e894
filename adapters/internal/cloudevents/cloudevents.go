// Package cloudevents holds what every driver's CloudEvents wire format
// (wire_format: cloudevents) checks of a message before writing it as an
// event in its broker's binding.
package cloudevents

import (
	"fmt"
	"strings"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Check returns why m cannot be written as an event of a binding whose
// attribute headers are named prefix+attribute (ce- on NATS, ce_ on Kafka,
// cloudEvents: on AMQP), or nil.
//
// CloudEvents requires a type and a source. And a metadata key already
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
