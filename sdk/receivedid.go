package sdk

import (
	"encoding/json"

	"github.com/msgkit/msgkit/sdk/driver"
)

// receivedID is the id a received message is handled under: the id it
// carried or, when it carried none (the adapter derived one from the
// broker's record of it), the id of the CloudEvents event it holds. A
// producer that resends an event after a lost acknowledgement sends the
// same event id, while the broker's record differs, so only the event id
// lets an inbox or a deduplicating handler see the resend for what it is.
// A message that is not an event keeps the derived id.
func receivedID(dm *driver.Message) string {
	if !dm.DerivedID {
		return dm.ID
	}
	if id := cloudEventsID(dm.Metadata, dm.Payload); id != "" {
		return id
	}
	return dm.ID
}

// eventPrefixes are the prefixes of CloudEvents attributes in binary mode:
// msgkit's (the HTTP binding's) and the other bindings'.
var eventPrefixes = append([]string{"ce-"}, cloudEventsPrefixes...)

// cloudEventsID returns the event id of a CloudEvents event in binary mode
// (under msgkit's names or any binding's, with the specversion every event
// carries) or in structured mode, or "" when md and payload hold none.
func cloudEventsID(md map[string]string, payload []byte) string {
	for _, p := range eventPrefixes {
		if _, event := md[p+"specversion"]; event {
			if id := md[p+"id"]; id != "" {
				return id
			}
		}
	}
	if !structuredMode(md) {
		return ""
	}
	var ev map[string]json.RawMessage
	if json.Unmarshal(payload, &ev) != nil || ev["specversion"] == nil {
		return ""
	}
	var id string
	if json.Unmarshal(ev["id"], &id) != nil {
		return "" // absent, or not a string: not an id CloudEvents allows
	}
	return id
}
