package middleware

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/msgkit/msgkit/sdk"
)

// The handler context under Timeout must behave as
// context.WithTimeoutCause(parent, d, timeout.ErrExceeded) would, whichever
// of its methods a handler uses first. These tests hold it to that.

// runTimeout runs h under Timeout(d) with parent, returning the
// middleware's error and the context the handler saw.
func runTimeout(t *testing.T, parent context.Context, d time.Duration, h sdk.Handler) (error, context.Context) {
	t.Helper()
	var seen context.Context
	err := Timeout(d)(func(ctx context.Context, m *sdk.Message) error {
		seen = ctx
		return h(ctx, m)
	})(parent, sdk.NewMessage(nil))
	return err, seen
}

// eventually polls cond, failing after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s still waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling is the behaviour under test: no signal exists
	}
}

func checkTimedOut(t *testing.T, ctx context.Context) {
	t.Helper()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err = %v, want context.DeadlineExceeded", ctx.Err())
	}
	if cause := context.Cause(ctx); !errors.Is(cause, timeout.ErrExceeded) {
		t.Errorf("Cause = %v, want timeout.ErrExceeded", cause)
	}
	select {
	case <-ctx.Done():
	default:
		t.Error("Done is not closed though Err is set")
	}
}

func TestTimeoutContextWaitingOnDone(t *testing.T) {
	start := time.Now()
	err, ctx := runTimeout(t, context.Background(), 30*time.Millisecond, func(ctx context.Context, _ *sdk.Message) error {
		<-ctx.Done()
		checkTimedOut(t, ctx)
		return ctx.Err()
	})
	if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
		t.Errorf("timed out after %v, before its 30ms", elapsed)
	}
	if !errors.Is(err, timeout.ErrExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want an error wrapping timeout.ErrExceeded and the handler's, got %v", err)
	}
	checkTimedOut(t, ctx) // it stays timed out, not Canceled, once the handler returns
}

func TestTimeoutContextPollingErr(t *testing.T) {
	start := time.Now()
	err, _ := runTimeout(t, context.Background(), 30*time.Millisecond, func(ctx context.Context, _ *sdk.Message) error {
		eventually(t, "Err to be set by the deadline", func() bool { return ctx.Err() != nil })
		if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
			t.Errorf("Err set after %v, before the 30ms deadline", elapsed)
		}
		checkTimedOut(t, ctx) // Cause and Done asked for only after the deadline
		return errors.New("gave up")
	})
	if !errors.Is(err, timeout.ErrExceeded) {
		t.Errorf("want timeout.ErrExceeded, got %v", err)
	}
}

func TestTimeoutContextDerivedContextTimesOut(t *testing.T) {
	runTimeout(t, context.Background(), 30*time.Millisecond, func(ctx context.Context, _ *sdk.Message) error {
		child, cancel := context.WithCancel(context.WithValue(ctx, struct{}{}, 1))
		defer cancel()
		<-child.Done()
		checkTimedOut(t, child)
		return child.Err()
	})
}

func TestTimeoutContextFollowsParent(t *testing.T) {
	cause := errors.New("subscription closed")
	for _, askDone := range []bool{true, false} {
		parent, cancel := context.WithCancelCause(context.Background())
		started := make(chan struct{})
		go func() { <-started; cancel(cause) }()
		runTimeout(t, parent, time.Minute, func(ctx context.Context, _ *sdk.Message) error {
			close(started)
			if askDone {
				<-ctx.Done()
			} else {
				eventually(t, "the parent's cancellation", func() bool { return ctx.Err() != nil })
			}
			if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(ctx), cause) {
				t.Errorf("Done asked: %v: Err %v, Cause %v; want Canceled and the parent's cause", askDone, ctx.Err(), context.Cause(ctx))
			}
			return nil
		})
	}
}

func TestTimeoutContextValuesAndDeadline(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	before := time.Now()
	runTimeout(t, parent, time.Minute, func(ctx context.Context, _ *sdk.Message) error {
		if ctx.Value(key{}) != "v" {
			t.Error("the parent's value is lost")
		}
		d, ok := ctx.Deadline()
		if !ok || d.Before(before.Add(time.Minute)) || d.After(time.Now().Add(time.Minute)) {
			t.Errorf("Deadline = %v, %v; want about a minute from now", d, ok)
		}
		if ctx.Err() != nil || context.Cause(ctx) != nil {
			t.Errorf("a running handler's context has Err %v, Cause %v", ctx.Err(), context.Cause(ctx))
		}
		return nil
	})
	early, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	want, _ := early.Deadline()
	runTimeout(t, early, time.Minute, func(ctx context.Context, _ *sdk.Message) error {
		if d, _ := ctx.Deadline(); !d.Equal(want) {
			t.Errorf("Deadline = %v, want the parent's earlier %v", d, want)
		}
		return nil
	})
}

func TestTimeoutContextEndsWhenHandlerReturns(t *testing.T) {
	for _, askDone := range []bool{true, false} {
		err, ctx := runTimeout(t, context.Background(), time.Minute, func(ctx context.Context, _ *sdk.Message) error {
			if askDone {
				_ = ctx.Done()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
		default:
			t.Errorf("Done asked during the handler: %v: a returned handler's context is not done", askDone)
		}
		if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(context.Cause(ctx), context.Canceled) {
			t.Errorf("Done asked during the handler: %v: Err %v, Cause %v; want Canceled, as after a cancel", askDone, ctx.Err(), context.Cause(ctx))
		}
	}
}

// TestTimeoutWatchdogTimesOutEachAtItsOwnDeadline runs handlers that start
// at different times, fast ones among them, and checks that each slow one
// times out no earlier than its own deadline, that no fast one times out,
// and that the watchdog holds nothing afterwards.
func TestTimeoutWatchdogTimesOutEachAtItsOwnDeadline(t *testing.T) {
	const d = 40 * time.Millisecond
	mw := Timeout(d)
	var w atomic.Pointer[watchdog]
	h := mw(func(ctx context.Context, m *sdk.Message) error {
		w.Store(ctx.(*deadlineCtx).w)
		if m.Get("kind") == "fast" {
			return nil
		}
		deadline, _ := ctx.Deadline()
		if m.Get("done") == "yes" {
			<-ctx.Done()
		} else {
			eventually(t, "the deadline", func() bool { return ctx.Err() != nil })
		}
		if early := time.Until(deadline); early > 0 {
			t.Errorf("a handler timed out %v before its deadline", early)
		}
		return ctx.Err()
	})
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		slow := i%4 == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := sdk.NewMessage(nil)
			if i%8 == 0 {
				m.Set("done", "yes")
			}
			m.Set("kind", map[bool]string{true: "slow", false: "fast"}[slow])
			err := h(context.Background(), m)
			if slow != errors.Is(err, timeout.ErrExceeded) {
				t.Errorf("handler %d (slow %v) returned %v", i, slow, err)
			}
		}()
		time.Sleep(2 * time.Millisecond) // staggered starts: deadlines that differ
	}
	wg.Wait()
	wd := w.Load()
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if wd.head != nil || wd.tail != nil {
		t.Error("the watchdog still holds handlers that have returned")
	}
}
