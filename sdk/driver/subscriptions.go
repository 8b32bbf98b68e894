package driver

import (
	"errors"
	"sync"
)

// ErrClosed is what a transport's or subscription's calls return, wrapped,
// once it is closed. The engine stops receiving from a subscription whose
// ReceiveBatch returns it, since no retry can help. sdk.ErrClosed is the
// same error.
var ErrClosed = errors.New("messaging: closed")

// Subscriptions are the open subscriptions of a transport, which the
// transport's Close closes: a transport closed under a running client
// hands back what its subscriptions hold instead of leaving them to time
// out. S is the driver's subscription type, usually a pointer. The zero
// value is ready.
type Subscriptions[S interface {
	comparable
	Close() error
}] struct {
	mu     sync.Mutex
	open   map[S]struct{}
	closed bool
}

// Add registers s. Once Close has run, it closes s instead and returns
// ErrClosed, wrapped by the caller with the driver's name.
func (r *Subscriptions[S]) Add(s S) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = s.Close()
		return ErrClosed
	}
	if r.open == nil {
		r.open = map[S]struct{}{}
	}
	r.open[s] = struct{}{}
	r.mu.Unlock()
	return nil
}

// Remove forgets s; a subscription calls it when it closes.
func (r *Subscriptions[S]) Remove(s S) {
	r.mu.Lock()
	delete(r.open, s)
	r.mu.Unlock()
}

// Closed reports whether Close has run.
func (r *Subscriptions[S]) Closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// Close refuses new subscriptions and closes every open one, returning
// their errors joined. It reports first=false, and does nothing, when it
// had already run, so that a transport releases its connections once.
func (r *Subscriptions[S]) Close() (first bool, err error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false, nil
	}
	r.closed = true
	open := r.open
	r.open = nil
	r.mu.Unlock()
	var errs []error
	for s := range open {
		errs = append(errs, s.Close())
	}
	return true, errors.Join(errs...)
}
