package sdk_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/msgkit/msgkit/sdk"
)

func TestQuoteName(t *testing.T) {
	for _, name := range []string{"", "orders", strings.Repeat("a", 128), "tab\there"} {
		if got, want := sdk.QuoteName(name), strconv.Quote(name); got != want {
			t.Errorf("QuoteName(%q) = %s, want it quoted whole as %s", name, got, want)
		}
	}
	for _, name := range []string{strings.Repeat("a", 129), strings.Repeat("é", 1000), strings.Repeat("x", 70000)} {
		got := sdk.QuoteName(name)
		if len(got) > 100 {
			t.Errorf("QuoteName of a %d-byte name is %d bytes: %s", len(name), len(got), got)
		}
		if !strings.HasSuffix(got, "... ("+strconv.Itoa(len(name))+" bytes)") {
			t.Errorf("QuoteName of a %d-byte name does not end with its length: %s", len(name), got)
		}
		quoted := got[:strings.LastIndex(got, "...")]
		head, err := strconv.Unquote(quoted)
		if err != nil || !strings.HasPrefix(name, head) || !utf8.ValidString(head) || len(head) == 0 {
			t.Errorf("QuoteName of a %d-byte name starts with %s, want a quoted prefix of whole characters", len(name), quoted)
		}
	}
}
