package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/msgkit/msgkit/sdk"
)

// Timeout cancels the handler's context after d; the handler must honour
// it. A handler that times out fails with an error wrapping
// timeout.ErrExceeded (failsafe-go's), and the message is retried or
// redelivered like any failure. The context behaves as one from
// context.WithTimeoutCause(ctx, d, timeout.ErrExceeded): its Err is
// context.DeadlineExceeded and its context.Cause timeout.ErrExceeded.
//
// It is a context deadline rather than failsafe-go's Timeout executor: the
// behaviour is the same (the handler runs in the caller's goroutine and its
// context is cancelled), and the executor's per-call execution costs about
// 1 µs and 20 allocations that every message would pay. It is not
// context.WithTimeout either, which costs a runtime timer and a
// registration with the parent per message (0.7–1 µs here, and more under
// load, see docs/benchmarks.md): one timer per Timeout watches every
// message's deadline, and the standard context is made only for a handler
// that asks for Done (see deadlineCtx).
//
// It panics when d is not positive: every handler would time out at once.
func Timeout(d time.Duration) Middleware {
	if d <= 0 {
		panic(fmt.Sprintf("middleware.Timeout(%v): want a positive duration", d))
	}
	w := &watchdog{d: d, epoch: time.Now()}
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			tctx := w.start(ctx)
			err := call(tctx, next, msg)
			timedOut := tctx.finish()
			if err != nil && timedOut {
				return fmt.Errorf("handler for %s did not finish within %v: %w", sdk.QuoteName(msg.Topic()), d, errors.Join(timeout.ErrExceeded, err))
			}
			return err
		}
	}
}

// watchdog holds the running handlers of one Timeout, oldest deadline
// first, and one timer for the oldest. Every deadline is "now + d" with the
// same d, so adding at the tail keeps the list in order (up to the
// nanoseconds between taking the time and taking the lock) and starting or
// finishing a handler is O(1).
type watchdog struct {
	d time.Duration
	// epoch is when the watchdog was made. Deadlines are kept as the time
	// since it: time.Since reads one clock where time.Now reads two, and
	// time.Now was a fifth of Timeout's cost. epoch.Add(deadline) carries
	// epoch's monotonic reading, so time.Until and comparisons on the
	// Deadline a handler sees stay exact if the wall clock is set.
	epoch      time.Time
	mu         sync.Mutex
	head, tail *deadlineCtx
	timer      *time.Timer
	armed      bool
}

func (w *watchdog) start(parent context.Context) *deadlineCtx {
	c := &deadlineCtx{Context: parent, deadline: time.Since(w.epoch) + w.d, w: w}
	w.mu.Lock()
	c.prev = w.tail
	if w.tail != nil {
		w.tail.next = c
	} else {
		w.head = c
	}
	w.tail = c
	if !w.armed {
		w.armed = true
		if w.timer == nil {
			w.timer = time.AfterFunc(w.d, w.fire)
		} else {
			w.timer.Reset(w.d)
		}
	}
	w.mu.Unlock()
	return c
}

// unlinkLocked takes c out of the list; w.mu is held.
func (w *watchdog) unlinkLocked(c *deadlineCtx) {
	if c.prev == nil && w.head != c {
		return // not in the list (any more)
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		w.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		w.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// fire times out every handler whose deadline has passed and sets the timer
// for the next one. The timer may fire for a handler that has finished
// since; then it only moves on.
func (w *watchdog) fire() {
	now := time.Since(w.epoch)
	var expired []*deadlineCtx
	w.mu.Lock()
	for c := w.head; c != nil && c.deadline <= now; c = w.head {
		w.unlinkLocked(c)
		expired = append(expired, c)
	}
	if w.head != nil {
		w.timer.Reset(w.head.deadline - now)
	} else {
		w.armed = false
	}
	w.mu.Unlock()
	for _, c := range expired {
		c.expire()
	}
}

const (
	stateRunning int32 = iota
	stateTimedOut
	stateFinished
)

// deadlineCtx is a handler's context under Timeout. Until someone asks for
// Done, it answers Err, Deadline and Value from its state and its parent,
// with no timer and no registration with the parent; the watchdog moves it
// to timedOut. The first call to Done makes the standard context the
// handler would otherwise have had, context.WithDeadlineCause(parent,
// deadline, timeout.ErrExceeded) (cancelled at once if the time is already
// up or the handler has returned), and from then on it answers from that
// one, so Done, Err, context.Cause and contexts derived from it behave
// exactly as the standard library's.
type deadlineCtx struct {
	context.Context               // the parent
	deadline        time.Duration // since w.epoch
	w               *watchdog
	prev, next      *deadlineCtx // in w's list, under w.mu

	mu    sync.Mutex // makes std once
	state atomic.Int32
	std   atomic.Pointer[stdContext]
}

type stdContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// standard returns the standard context, making it on first use.
func (c *deadlineCtx) standard() *stdContext {
	if s := c.std.Load(); s != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.std.Load(); s != nil {
		return s
	}
	deadline := c.w.epoch.Add(c.deadline)
	if c.state.Load() == stateTimedOut {
		deadline = time.Time{} // already past: cancelled at once, with the cause
	}
	ctx, cancel := context.WithDeadlineCause(c.Context, deadline, timeout.ErrExceeded)
	s := &stdContext{ctx: ctx, cancel: cancel}
	c.std.Store(s)
	// finish may have loaded std just before the Store; then it is this
	// check that sees the handler has returned (cancel is idempotent).
	if c.state.Load() == stateFinished {
		cancel()
	}
	return s
}

// expire is the watchdog's: the deadline has passed.
func (c *deadlineCtx) expire() { c.state.CompareAndSwap(stateRunning, stateTimedOut) }

// finish is called when the handler returns: like a context's cancel, it
// ends the context and releases what it holds. It reports whether the
// deadline passed first.
func (c *deadlineCtx) finish() (timedOut bool) {
	c.w.mu.Lock()
	c.w.unlinkLocked(c)
	c.w.mu.Unlock()
	timedOut = c.state.Swap(stateFinished) == stateTimedOut
	if s := c.std.Load(); s != nil {
		timedOut = timedOut || errors.Is(context.Cause(s.ctx), timeout.ErrExceeded)
		s.cancel()
	}
	return timedOut
}

// Deadline implements context.Context.
func (c *deadlineCtx) Deadline() (time.Time, bool) {
	own := c.w.epoch.Add(c.deadline)
	if d, ok := c.Context.Deadline(); ok && d.Before(own) {
		return d, true
	}
	return own, true
}

// Done implements context.Context.
func (c *deadlineCtx) Done() <-chan struct{} { return c.standard().ctx.Done() }

// Err implements context.Context.
func (c *deadlineCtx) Err() error {
	if s := c.std.Load(); s != nil {
		return s.ctx.Err()
	}
	switch c.state.Load() {
	case stateTimedOut:
		return context.DeadlineExceeded
	case stateFinished:
		return context.Canceled
	}
	return c.Context.Err()
}

// Value implements context.Context. While the handler runs and no one has
// asked for Done, every key is the parent's; context.Cause looks up the
// parent's cancellation cause this way, which is right while this context
// is not cancelled itself. Once it is, the standard context answers.
func (c *deadlineCtx) Value(key any) any {
	s := c.std.Load()
	if s == nil && c.state.Load() != stateRunning {
		s = c.standard()
	}
	if s != nil {
		return s.ctx.Value(key)
	}
	return c.Context.Value(key)
}

// String names the context, as the standard ones do.
func (c *deadlineCtx) String() string {
	return fmt.Sprintf("%v.WithDeadline(%v) (msgkit middleware.Timeout)", c.Context, c.w.epoch.Add(c.deadline))
}
