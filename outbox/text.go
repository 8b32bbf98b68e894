package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// What the tables' text columns hold exactly. PostgreSQL refuses NUL and
// invalid UTF-8 in text. MySQL and MariaDB keep 255 characters in the
// VARCHAR(255) columns and, outside strict mode or under INSERT IGNORE,
// cut what is longer or stops being UTF-8 with only a warning; their
// utf8mb4_bin collation ignores trailing spaces when comparing.

// maxVarchar is the length of the MySQL tables' VARCHAR columns, in
// characters.
const maxVarchar = 255

// notStorable says why s cannot go into a text column of d's outbox table
// as it is, or returns "".
func (d Dialect) notStorable(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8, which the outbox's text columns cannot hold as it is: use UTF-8"
	case d == Postgres && strings.IndexByte(s, 0) >= 0:
		return "holds a NUL byte, which PostgreSQL's text columns cannot hold: remove it"
	case d == MySQL && utf8.RuneCountInString(s) > maxVarchar:
		return "is longer than the 255 characters of the outbox table's VARCHAR(255) columns: shorten it"
	}
	return ""
}

// inboxKey is the inbox's record of a message id: the id itself, or, when
// d's column would not hold it exactly or would compare it equal to
// another id (the cases notStorable names, and trailing spaces on MySQL),
// "sha256:" and the hex of its SHA-256. A cut or changed id could match
// another message's, which the inbox would then skip as processed.
func (d Dialect) inboxKey(id string) string {
	if d.notStorable(id) == "" && !(d == MySQL && strings.HasSuffix(id, " ")) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}
