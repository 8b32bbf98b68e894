// Package topicname checks topic and group names for what brokers cannot hold
// faithfully.
package topicname

import (
	"fmt"
	"unicode/utf8"
)

// Unprintable describes the first byte of name a broker may not keep as it
// is, or returns "" when there is none: a byte that is not valid UTF-8
// (AMQP closes the connection over one) or a control character (RabbitMQ
// drops one from the name it declares but not from the name a publish or
// consume looks up, so the two never meet).
func Unprintable(name string) string {
	for i, r := range name {
		switch {
		case r == utf8.RuneError && !validAt(name, i):
			return fmt.Sprintf("byte %#x at %d, which is not UTF-8", name[i], i)
		case r < 0x20 || r == 0x7f:
			return fmt.Sprintf("the control character %q at byte %d", r, i)
		}
	}
	return ""
}

// validAt reports whether name holds a valid encoding at byte i (of U+FFFD,
// where the range loop yields RuneError).
func validAt(name string, i int) bool {
	_, size := utf8.DecodeRuneInString(name[i:])
	return size > 1
}
