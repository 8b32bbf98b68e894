package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/msgkit/msgkit/sdk"
)

// jsonMessage is a message as --json prints it, one per line. The payload
// is text when it is valid UTF-8 and payload_base64 otherwise, so that
// any bytes survive a pipe.
type jsonMessage struct {
	ID            string            `json:"id"`
	Topic         string            `json:"topic"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 *string           `json:"payload_base64,omitempty"`
	Metadata      map[string]string `json:"metadata"`
}

func toJSON(m *sdk.Message) jsonMessage {
	j := jsonMessage{ID: m.ID, Topic: m.Topic(), Metadata: m.Metadata}
	if j.Metadata == nil {
		j.Metadata = map[string]string{}
	}
	if utf8.Valid(m.Payload) {
		s := string(m.Payload)
		j.Payload = &s
	} else {
		s := base64.StdEncoding.EncodeToString(m.Payload)
		j.PayloadBase64 = &s
	}
	return j
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeMessage prints m as text: a header line, its metadata sorted by key,
// then its payload (base64 when it is not UTF-8 text) and a blank line.
func writeMessage(w io.Writer, m *sdk.Message) {
	fmt.Fprintf(w, "id: %s\ntopic: %s\n", m.ID, m.Topic())
	keys := make([]string, 0, len(m.Metadata))
	for k := range m.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %s\n", k, oneLine(m.Metadata[k]))
	}
	if utf8.Valid(m.Payload) {
		fmt.Fprintf(w, "payload: %s\n\n", oneLine(string(m.Payload)))
	} else {
		fmt.Fprintf(w, "payload (base64): %s\n\n", base64.StdEncoding.EncodeToString(m.Payload))
	}
}

// oneLine keeps a value on its line: newlines and other control
// characters are escaped.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

// ago says how long before now t was, for people.
func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String() + " ago"
}
