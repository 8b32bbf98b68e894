package topicname

import (
	"strings"
	"testing"
)

func TestUnprintable(t *testing.T) {
	for _, ok := range []string{"", "orders.created", "заказы", "a b", "a/b:c#d*e>f", "\uFFFDé"} {
		if got := Unprintable(ok); got != "" {
			t.Errorf("Unprintable(%q) = %q, want \"\"", ok, got)
		}
	}
	for name, want := range map[string]string{
		"a\nb":     `the control character '\n' at byte 1`,
		"ab\x00":   `the control character '\x00' at byte 2`,
		"a\x7f":    `the control character '\x7f' at byte 1`,
		"a\xffb":   "byte 0xff at 1, which is not UTF-8",
		"é\xc3":    "byte 0xc3 at 2, which is not UTF-8",
		"\tindent": `the control character '\t' at byte 0`,
	} {
		if got := Unprintable(name); !strings.Contains(got, want) {
			t.Errorf("Unprintable(%q) = %q, want %q", name, got, want)
		}
	}
}
