package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/msgkit/msgkit/sdk"
)

// The metadata column is written by hand; it must read back as the
// metadata the message is published with, whatever the strings hold.
func TestMetadataJSONReadsBackAsPublished(t *testing.T) {
	tricky := []string{"", "plain", `quo"te`, `back\slash`, "new\nline\ttab\r", "\x00\x01\x1f\x7f", "ключ значение ✓ 🎉",
		"<html>&amp;</html>", "\u2028\u2029", "bad \xff\xfe utf-8", `{"json":"inside"}`}
	md := map[string]string{}
	for i, s := range tricky {
		md[s] = tricky[len(tricky)-1-i]
	}
	m := &sdk.Message{Payload: []byte("p"), Metadata: md, EventType: "order.created", Source: "src\"1",
		CorrelationID: "corr\n", OrderingKey: "k\\1", Time: time.Date(2026, 11, 25, 16, 0, 0, 123, time.UTC)}
	want := m.ToWatermill(time.Now()).Metadata
	// encoding/json's own reading of what it writes, as the column held
	// before: invalid UTF-8 comes back as U+FFFD.
	enc, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var wantBack map[string]string
	if err := json.Unmarshal(enc, &wantBack); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	col := metadataJSON(sdk.NewOutgoing(m, time.Now()))
	if !utf8.ValidString(col) {
		t.Fatalf("the column must be valid UTF-8 (PostgreSQL refuses anything else in TEXT): %q", col)
	}
	if err := json.Unmarshal([]byte(col), &got); err != nil {
		t.Fatalf("the column is not JSON: %v\n%s", err, col)
	}
	if !maps.Equal(got, wantBack) {
		t.Fatalf("metadata changed on its way through the column:\ngot  %q\nwant %q", got, wantBack)
	}
}

// Add refuses metadata that is not valid UTF-8 instead of storing it
// changed (the JSON column would turn the bad bytes into U+FFFD).
func TestAddRefusesMetadataThatIsNotUTF8(t *testing.T) {
	s := &Store{table: "outbox", now: time.Now}
	for _, md := range []map[string]string{{"k": "bad \xff value"}, {"bad \xfe key": "v"}} {
		_, err := s.inserts(context.Background(), "orders", []*sdk.Message{{Payload: []byte("p"), Metadata: md}})
		if !errors.Is(err, sdk.ErrInvalidMetadata) {
			t.Fatalf("metadata %q: want sdk.ErrInvalidMetadata, got %v", md, err)
		}
	}
	if _, err := s.inserts(context.Background(), "orders", []*sdk.Message{{Payload: []byte("\xff binary payloads are fine"), Metadata: map[string]string{"k": "ключ ✓"}}}); err != nil {
		t.Fatalf("valid metadata refused: %v", err)
	}
}
