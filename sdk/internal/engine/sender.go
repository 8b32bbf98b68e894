package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Sender publishes through a driver: it cuts publishes to the driver's
// batch size, coalesces concurrent ones where the driver asks for it, and
// sends again what failed for a transient reason until the caller's
// deadline.
type Sender struct {
	t         driver.Transport
	opts      driver.SendOptions
	deadlines deadlines

	mu      sync.Mutex
	closed  bool
	topics  map[string]*coalescer
	running sync.WaitGroup // Send calls in progress
	calls   sync.WaitGroup // shared calls in progress, which may outlive a Send that gave up on them
}

// NewSender returns a Sender on t.
func NewSender(t driver.Transport) *Sender {
	opts := t.SendOptions()
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	return &Sender{t: t, opts: opts, deadlines: deadlines{timeout: opts.Timeout}}
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("sender closed")

// Send publishes msgs to topic and returns when the broker took every one,
// or with the first failure. A message that failed for a transient reason
// is sent again, with backoff, until ctx ends (or the driver's Timeout, when
// ctx has no deadline); a message may then arrive twice, never zero times.
func (s *Sender) Send(ctx context.Context, topic string, msgs []*driver.Message) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.running.Add(1)
	s.mu.Unlock()
	defer s.running.Done()
	if _, ok := ctx.Deadline(); !ok && s.opts.Timeout > 0 {
		if ctx.Done() == nil { // it can never end: share a timer
			ctx = s.deadlines.bound(ctx)
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
			defer cancel()
		}
	}
	pending := msgs
	backoff := 20 * time.Millisecond
	var last error    // the last failure the broker (or the connection) gave, not the wait's end
	var waiting error // the driver's account of the wait's end (what it waited for), when it gave one
	for {
		errs := s.sendOnce(ctx, topic, pending)
		if errs == nil {
			return nil
		}
		var retry []*driver.Message
		for i, err := range errs {
			if err == nil {
				continue
			}
			if ctx.Err() == nil && atDeadline(ctx, err) {
				// The driver's client ended the call at ctx's deadline a
				// moment before ctx itself did: the wait's end, not an
				// answer.
				<-ctx.Done()
			}
			switch {
			case ctx.Err() == nil || !errors.Is(err, ctx.Err()):
				last = err
			case err != ctx.Err() && err != context.Cause(ctx):
				waiting = err
			}
			if ctx.Err() == nil && !s.t.IsRetryable(err) {
				return fmt.Errorf("%d of %d message(s) not sent (message %s refused): %w", countErrs(errs), len(msgs), shortID(pending[i].ID), err)
			}
			retry = append(retry, pending[i])
		}
		if len(retry) == 0 {
			return nil
		}
		if ctx.Err() == nil {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			if last == nil {
				if waiting != nil {
					return fmt.Errorf("%d of %d message(s) not sent when the wait ended: %w", len(retry), len(msgs), waiting)
				}
				return fmt.Errorf("%d of %d message(s) not sent when the wait ended: %w", len(retry), len(msgs), context.Cause(ctx))
			}
			return fmt.Errorf("%d of %d message(s) not sent when the wait ended (%w); the last attempt that got an answer failed with: %w",
				len(retry), len(msgs), context.Cause(ctx), last)
		}
		backoff = min(2*backoff, time.Second)
		pending = retry
	}
}

// atDeadline reports whether err is a deadline error from a client that
// timed its call by ctx's deadline, which has (all but) come.
func atDeadline(ctx context.Context, err error) bool {
	d, ok := ctx.Deadline()
	return ok && errors.Is(err, context.DeadlineExceeded) && time.Until(d) < LateGrace
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

// sendOnce makes one attempt at every message and returns nil when all were
// sent, else one error per message.
func (s *Sender) sendOnce(ctx context.Context, topic string, msgs []*driver.Message) []error {
	if s.opts.Coalesce {
		return s.coalescer(topic).send(ctx, msgs)
	}
	var errs []error
	max := s.opts.MaxMessages
	if max <= 0 {
		max = len(msgs)
	}
	for off := 0; off < len(msgs); off += max {
		chunk := msgs[off:min(off+max, len(msgs))]
		if chunkErrs := perMessage(s.t.SendBatch(ctx, topic, chunk), len(chunk)); chunkErrs != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			copy(errs[off:], chunkErrs)
		}
	}
	return errs
}

// perMessage spreads SendBatch's error over its n messages: nil when all
// were sent.
func perMessage(err error, n int) []error {
	if err == nil {
		return nil
	}
	var be driver.BatchError
	if errors.As(err, &be) && len(be) == n {
		if countErrs(be) == 0 {
			return nil
		}
		return be
	}
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Close waits for Send calls in progress and for the shared calls they
// started. Send fails with ErrClosed afterwards.
func (s *Sender) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.running.Wait()
	s.calls.Wait()
}

// shortID is id for an error: a long one cut to its first 64 bytes and its
// length, so that the error stays readable.
func shortID(id string) string {
	if len(id) <= 128 {
		return id
	}
	return fmt.Sprintf("%.64s... (%d bytes)", id, len(id))
}
