package outbox

import (
	"strings"
	"testing"
)

func TestWhatTextColumnsHold(t *testing.T) {
	long := strings.Repeat("é", 256)
	for _, c := range []struct {
		d    Dialect
		s    string
		says string // "" when stored as it is
	}{
		{Postgres, "orders", ""},
		{Postgres, "a\x00b", "NUL"},
		{Postgres, "a\xffb", "not valid UTF-8"},
		{Postgres, long, ""},
		{MySQL, "a\x00b", ""},
		{MySQL, long, "255 characters"},
		{MySQL, long[:510], ""}, // 255 two-byte characters
		{MySQL, "a\xffb", "not valid UTF-8"},
		{SQLite, "a\x00b", ""},
		{SQLite, "a\xffb", "not valid UTF-8"},
	} {
		got := c.d.notStorable(c.s)
		if c.says == "" && got != "" || !strings.Contains(got, c.says) {
			t.Errorf("%s, %.20q (%d bytes): got %q, want %q", c.d, c.s, len(c.s), got, c.says)
		}
	}
}

func TestInboxKeysTellIDsApart(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL, SQLite} {
		seen := map[string]string{}
		for _, id := range []string{"id", "id ", "a\xff", "a\xfe", "a\x00b", "a\x00c", strings.Repeat("p", 255) + "a", strings.Repeat("p", 255) + "b"} {
			k := d.inboxKey(id)
			if other, ok := seen[k]; ok {
				t.Errorf("%s: ids %q and %q share the inbox key %q", d, other, id, k)
			}
			seen[k] = id
			if d.notStorable(k) != "" || d == MySQL && strings.HasSuffix(k, " ") {
				t.Errorf("%s: the inbox key %q of %q is not stored as it is", d, k, id)
			}
			if k != d.inboxKey(id) {
				t.Errorf("%s: the inbox key of %q changes between calls", d, id)
			}
		}
		if k := d.inboxKey("0b7c6a52-1e7d-4a43-9d3c-6f5b0c4f1a11"); k != "0b7c6a52-1e7d-4a43-9d3c-6f5b0c4f1a11" {
			t.Errorf("%s: an ordinary id must be its own key (records made before stay valid), got %q", d, k)
		}
	}
}
