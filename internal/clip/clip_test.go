package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTextIsValidUTF8WithinMax(t *testing.T) {
	for _, s := range []string{"short", "bad \xff byte", strings.Repeat("é", 3000), strings.Repeat("x", 5000) + "\xfe"} {
		got := Text(s, 4096)
		if !utf8.ValidString(got) || len(got) > 4096 {
			t.Errorf("Text(%.20q...) = %d bytes, valid %v", s, len(got), utf8.ValidString(got))
		}
		if len(s) > 4096 && !strings.Contains(got, "more bytes cut") {
			t.Errorf("a cut text must say so: %.40q", got[len(got)-40:])
		}
	}
	if Text("ok", 10) != "ok" {
		t.Error("a short valid text is kept as it is")
	}
}
