package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines bounds the publishes whose context can never end (no deadline,
// no cancellation: context.Background, or a context with only values) by
// the driver's Timeout without a timer each. One timer context, ending
// Timeout after it was made, serves every such publish that starts within
// a hundredth of Timeout after it; each publish keeps its own context's
// values. A publish so bounded ends between 99% and 100% of Timeout after
// it started. A timer and its context cost a publish about a fifth of the
// SDK's own work on a pipelined broker.
type deadlines struct {
	timeout time.Duration
	current atomic.Pointer[sharedDeadline]
	mu      sync.Mutex // one replacement at a time
}

type sharedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called: the context ends at its deadline, and publishes may still hold it
	ends   time.Time
}

// bound returns ctx bounded by the timeout, for a ctx with neither
// deadline nor Done channel.
func (d *deadlines) bound(ctx context.Context) context.Context {
	now := time.Now()
	shared := d.current.Load()
	if shared == nil || shared.ends.Sub(now) < d.timeout-d.timeout/100 {
		d.mu.Lock()
		if shared = d.current.Load(); shared == nil || shared.ends.Sub(now) < d.timeout-d.timeout/100 {
			c, cancel := context.WithDeadline(context.Background(), now.Add(d.timeout))
			shared = &sharedDeadline{ctx: c, cancel: cancel, ends: now.Add(d.timeout)}
			d.current.Store(shared)
		}
		d.mu.Unlock()
	}
	if ctx == context.Background() || ctx == context.TODO() {
		return shared.ctx // no values to keep, and no allocation
	}
	return boundContext{Context: ctx, shared: shared.ctx}
}

// boundContext is a context that never ends (its values) bounded by a
// shared one (its deadline, Done and Err). Value looks in the shared
// context first, which holds no values of its own: a context derived from
// a boundContext then finds the shared context's cancellation there and
// joins it, instead of watching Done from a goroutine of its own.
type boundContext struct {
	context.Context
	shared context.Context
}

func (c boundContext) Deadline() (time.Time, bool) { return c.shared.Deadline() }
func (c boundContext) Done() <-chan struct{}       { return c.shared.Done() }
func (c boundContext) Err() error                  { return c.shared.Err() }

func (c boundContext) Value(key any) any {
	if v := c.shared.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}
