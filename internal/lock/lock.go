// Package lock holds Mutex, a mutual-exclusion lock that a caller waits
// for only until its context ends.
package lock

import (
	"context"
	"sync"
)

// Mutex is a mutual-exclusion lock whose Lock gives up when the caller's
// context ends. A driver holds one while it waits for the broker (creating
// a topic, declaring an exchange, opening a channel), for up to its own
// caller's deadline: a caller with an earlier deadline must not wait past
// it, which sync.Mutex would make it do. The zero value is unlocked.
type Mutex struct {
	once sync.Once
	slot chan struct{} // holds a value while locked
}

// Lock locks m, or returns ctx's error if ctx ends first. A free lock is
// taken even when ctx has ended.
func (m *Mutex) Lock(ctx context.Context) error {
	m.once.Do(func() { m.slot = make(chan struct{}, 1) })
	select {
	case m.slot <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock unlocks m. Unlocking a Mutex that is not locked blocks for ever,
// as no caller should.
func (m *Mutex) Unlock() { <-m.slot }
