package sdk

import (
	"crypto/rand"
	"sync"

	"github.com/google/uuid"
)

// randomChunk is randomness read ahead for new ids: one read from
// crypto/rand serves 64 ids instead of one read each. The bytes are not
// secret: they become message ids, which travel in plain headers.
type randomChunk struct {
	b    [1024]byte
	used int // bytes handed out; len(b): read again first
}

// randomChunks keeps a chunk per processor, so concurrent publishers do
// not contend for one. A chunk the pool drops at a collection only wastes
// its unread bytes.
var randomChunks = sync.Pool{New: func() any { return &randomChunk{used: len(randomChunk{}.b)} }}

// newUUID returns a random (version 4) UUID in its text form.
func newUUID() string {
	c := randomChunks.Get().(*randomChunk)
	if c.used == len(c.b) {
		_, _ = rand.Read(c.b[:]) // never fails: crypto/rand crashes the program instead
		c.used = 0
	}
	var u uuid.UUID
	copy(u[:], c.b[c.used:c.used+16])
	c.used += 16
	randomChunks.Put(c)
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u.String()
}
