package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

var errFlaky = errors.New("connection reset (flaky)")

// fakeTransport records SendBatch calls; send decides each call's result.
type fakeTransport struct {
	driver.Transport // only the methods below are called
	opts             driver.SendOptions
	send             func(call int, msgs []*driver.Message) error
	sendCtx          func(ctx context.Context, msgs []*driver.Message) error // when set, called after send

	mu    sync.Mutex
	calls [][]string
}

func (t *fakeTransport) SendOptions() driver.SendOptions { return t.opts }
func (t *fakeTransport) IsRetryable(err error) bool      { return errors.Is(err, errFlaky) }
func (t *fakeTransport) SendBatch(ctx context.Context, _ string, msgs []*driver.Message) error {
	t.mu.Lock()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	t.calls = append(t.calls, ids)
	call := len(t.calls)
	t.mu.Unlock()
	if err := t.send(call, msgs); err != nil || t.sendCtx == nil {
		return err
	}
	return t.sendCtx(ctx, msgs)
}

func msgs(n int) []*driver.Message {
	out := make([]*driver.Message, n)
	for i := range out {
		out[i] = &driver.Message{ID: fmt.Sprint("m", i)}
	}
	return out
}

// Only the messages that failed for a transient reason are sent again.
func TestSendRetriesOnlyTheFailedMessages(t *testing.T) {
	tr := &fakeTransport{send: func(call int, m []*driver.Message) error {
		if call == 1 {
			return driver.BatchError{nil, errFlaky, nil}
		}
		return nil
	}}
	s := NewSender(tr)
	defer s.Close()
	if err := s.Send(context.Background(), "t", msgs(3)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tr.calls) != "[[m0 m1 m2] [m1]]" {
		t.Fatalf("want the batch, then m1 alone; calls: %v", tr.calls)
	}
}

// A refusal is not retried; a transient failure is, until the deadline,
// and the error then names the last failure the broker gave.
func TestSendStopsAtARefusalAndReportsTheLastTransientFailure(t *testing.T) {
	refused := errors.New("message too large")
	tr := &fakeTransport{send: func(int, []*driver.Message) error { return refused }}
	s := NewSender(tr)
	defer s.Close()
	if err := s.Send(context.Background(), "t", msgs(1)); !errors.Is(err, refused) || len(tr.calls) != 1 {
		t.Fatalf("a refusal must fail at once, with its cause: %v after %d calls", err, len(tr.calls))
	}
	tr = &fakeTransport{send: func(int, []*driver.Message) error { return errFlaky }}
	s2 := NewSender(tr)
	defer s2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s2.Send(ctx, "t", msgs(1))
	if !errors.Is(err, errFlaky) || !strings.Contains(err.Error(), "wait ended") || len(tr.calls) < 2 {
		t.Fatalf("a transient failure must be retried until the deadline and named: %v after %d calls", err, len(tr.calls))
	}
}

// A driver that waits for the broker (room in a full queue, a confirm)
// and says so when the context ends has its account in the error, not
// only the context's: the caller learns what the publish waited for.
func TestSendReportsWhatTheDriverWaitedFor(t *testing.T) {
	tr := &fakeTransport{send: func(int, []*driver.Message) error { return nil },
		sendCtx: func(ctx context.Context, _ []*driver.Message) error {
			<-ctx.Done()
			return fmt.Errorf("waiting for room in group %q: %w", "billing", ctx.Err())
		}}
	s := NewSender(tr)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, "t", msgs(1))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `waiting for room in group "billing"`) {
		t.Fatalf("want the deadline with what the driver waited for, got %v", err)
	}
}

// A client that times its call by the context's deadline may end it a
// moment before the context does: that is the wait's end, reported as
// such, not a failure the broker answered with.
func TestSendTakesADriverDeadlineJustBeforeTheContextsAsTheWaitsEnd(t *testing.T) {
	tr := &fakeTransport{send: func(int, []*driver.Message) error { return nil },
		sendCtx: func(ctx context.Context, _ []*driver.Message) error {
			d, _ := ctx.Deadline()
			time.Sleep(time.Until(d) - 2*time.Millisecond) // a client's own timer, firing early
			return fmt.Errorf("publish on the pipe: %w", context.DeadlineExceeded)
		}}
	s := NewSender(tr)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Send(ctx, "t", msgs(1))
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "got an answer") ||
		!strings.Contains(err.Error(), "wait ended: publish on the pipe") || len(tr.calls) != 1 {
		t.Fatalf("want the wait's end with the driver's account, after one call; got %v after %d calls", err, len(tr.calls))
	}
}

// Concurrent single-message publishes share SendBatch calls when the
// driver coalesces, never more than MaxMessages per call.
func TestCoalescedPublishesShareCalls(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 10, MaxInFlight: 1},
		send: func(call int, m []*driver.Message) error {
			if call == 1 {
				<-release // hold the first call while the others queue up
			}
			return nil
		}}
	s := NewSender(tr)
	defer s.Close()
	defer let() // before Close, which waits for the held call, if the test fails first
	var wg sync.WaitGroup
	for i := range 31 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Send(context.Background(), "t", []*driver.Message{{ID: fmt.Sprint("m", i)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	var first int
	waitFor(t, "the first call to be in flight", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if len(tr.calls) == 1 {
			first = len(tr.calls[0]) // one publish, or those that queued while it started
		}
		return len(tr.calls) == 1
	})
	c := s.coalescer("t")
	waitFor(t, "the others to queue behind it", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == 31-first })
	let()
	wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	total := 0
	for _, c := range tr.calls {
		if len(c) > 10 {
			t.Fatalf("a call carried %d messages, over MaxMessages 10", len(c))
		}
		total += len(c)
	}
	if total != 31 || len(tr.calls) > 5 {
		t.Fatalf("31 concurrent publishes must share calls (1 + 3 of ten); got %d calls for %d messages", len(tr.calls), total)
	}
}

// A publish larger than one call goes one call after another, in order,
// even when the driver lets calls run at once: concurrent calls could
// reach the broker in any order.
func TestCoalescedLargePublishKeepsItsOrder(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 10, MaxInFlight: 4},
		send: func(int, []*driver.Message) error {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // long enough for a second call to start, were it allowed
			mu.Lock()
			running--
			mu.Unlock()
			return nil
		}}
	s := NewSender(tr)
	defer s.Close()
	if err := s.Send(context.Background(), "t", msgs(35)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range tr.calls {
		got = append(got, c...)
	}
	want := make([]string, 35)
	for i := range want {
		want[i] = fmt.Sprint("m", i)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(tr.calls) != 4 || most != 1 {
		t.Fatalf("want 4 calls one after another carrying m0..m34 in order; got %d calls, %d at once at most: %v", len(tr.calls), most, tr.calls)
	}
}

// When a call of a large publish fails for a transient reason, the rest
// is not sent behind it: the retry sends the failed call's messages and
// the rest, in order.
func TestCoalescedLargePublishRetriesInOrder(t *testing.T) {
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 10, MaxInFlight: 4},
		send: func(call int, _ []*driver.Message) error {
			if call == 2 {
				return errFlaky
			}
			return nil
		}}
	s := NewSender(tr)
	defer s.Close()
	if err := s.Send(context.Background(), "t", msgs(25)); err != nil {
		t.Fatal(err)
	}
	if len(tr.calls) != 4 || tr.calls[2][0] != "m10" || tr.calls[3][0] != "m20" || tr.calls[3][len(tr.calls[3])-1] != "m24" {
		t.Fatalf("want m0-9, m10-19 (failed), then m10-19 and m20-24 in order; got %v", tr.calls)
	}
}
