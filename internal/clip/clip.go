// Package clip cuts text that goes into a header or a text column: error
// texts that may be long and hold bytes that are not UTF-8.
package clip

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text returns s as valid UTF-8 (other bytes become U+FFFD) of at most max
// bytes: cut at a character boundary, ending in "… (N more bytes cut)"
// when it was longer.
func Text(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max - 40 // room for the note
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes cut)", s[:cut], len(s)-cut)
}
