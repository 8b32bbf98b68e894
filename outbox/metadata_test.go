package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
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

// Add refuses a Time the ce-time text cannot carry (a year outside 0000 to
// 9999), which the relay would otherwise publish as no time at all.
func TestAddRefusesATimeRFC3339CannotCarry(t *testing.T) {
	s := &Store{table: "outbox", now: time.Now}
	for _, y := range []int{10000, -1} {
		m := &sdk.Message{Payload: []byte("p"), Time: time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)}
		if _, err := s.inserts(context.Background(), "orders", []*sdk.Message{m}); !errors.Is(err, sdk.ErrInvalidTime) {
			t.Fatalf("year %d: want sdk.ErrInvalidTime, got %v", y, err)
		}
	}
	m := &sdk.Message{Payload: []byte("p"), Time: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
	if _, err := s.inserts(context.Background(), "orders", []*sdk.Message{m}); err != nil {
		t.Fatalf("the last instant of 9999 is carried: %v", err)
	}
}

// Add refuses a topic, id or ordering key the table's text columns cannot
// hold as they are (NUL and invalid UTF-8 on PostgreSQL, more than 255
// characters on MySQL), naming the field, before any SQL.
func TestAddRefusesNamesTextColumnsCannotHold(t *testing.T) {
	s := &Store{table: "outbox", now: time.Now, dialect: Postgres}
	add := func(topic string, m *sdk.Message) error {
		_, err := s.inserts(context.Background(), topic, []*sdk.Message{m})
		return err
	}
	my := &Store{table: "outbox", now: time.Now, dialect: MySQL}
	if _, err := my.inserts(context.Background(), strings.Repeat("t", 256), []*sdk.Message{{}}); err == nil || !strings.Contains(err.Error(), "255 characters") {
		t.Errorf("MySQL, a 256-character topic: want a refusal naming the 255 characters, got %v", err)
	}
	if _, err := my.inserts(context.Background(), "orders", []*sdk.Message{{ID: strings.Repeat("i", 256)}}); err == nil || !strings.Contains(err.Error(), "its id") {
		t.Errorf("MySQL, a 256-character id: want a refusal naming the id, got %v", err)
	}
	for _, c := range []struct {
		topic string
		m     *sdk.Message
		says  string
	}{
		{"orders\x00", &sdk.Message{}, "the topic"},
		{"orders\xff", &sdk.Message{}, "the topic"},
		{"orders", &sdk.Message{ID: "id\x00"}, "its id"},
		{"orders", &sdk.Message{ID: "id\xfe"}, "its id"},
		{"orders", &sdk.Message{OrderingKey: "key\x00"}, "its ordering key"},
	} {
		err := add(c.topic, c.m)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("topic %q, id %q, ordering key %q: want a refusal naming %s, got %v", c.topic, c.m.ID, c.m.OrderingKey, c.says, err)
		}
	}
	if err := add("заказы.créés", &sdk.Message{ID: "id\n1", OrderingKey: "ключ\t"}); err != nil {
		t.Fatalf("names any UTF-8 without NUL must be stored: %v", err)
	}
}
