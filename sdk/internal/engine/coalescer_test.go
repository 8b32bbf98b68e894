package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

type ctxKey struct{}

// With fewer concurrent publishers than MaxInFlight, each publish makes its
// own call with its own context, values included (a trace span reaches the
// driver), and none waits for another.
func TestCoalescedPublishesUnderMaxInFlightGoAtOnceWithTheirContext(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	running := 0
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 10, MaxInFlight: 4},
		send: func(int, []*driver.Message) error { return nil }}
	tr.sendCtx = func(ctx context.Context, m []*driver.Message) error {
		if got := ctx.Value(ctxKey{}); got != m[0].ID {
			return fmt.Errorf("SendBatch for %s got context value %v: not the publisher's context", m[0].ID, got)
		}
		mu.Lock()
		running++
		mu.Unlock()
		<-release
		return nil
	}
	s := NewSender(tr)
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("m", i)
			errs <- s.Send(context.WithValue(context.Background(), ctxKey{}, id), "t", []*driver.Message{{ID: id}})
		}()
	}
	waitFor(t, "4 calls in flight at once", func() bool { mu.Lock(); defer mu.Unlock(); return running == 4 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.calls) != 4 {
		t.Fatalf("4 publishes under MaxInFlight 4 made %d calls, want 4 of one message", len(tr.calls))
	}
}

// Publishes whose wait ends while they queue, or as they are given the
// next call, return by their deadline and never hold a slot: afterwards no
// slot is taken, nothing is queued, and a publish goes through.
func TestCoalescedPublishesGivingUpLeaveNoSlotTaken(t *testing.T) {
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 5, MaxInFlight: 2},
		send: func(int, []*driver.Message) error { return nil }}
	tr.sendCtx = func(ctx context.Context, _ []*driver.Message) error {
		select { // a driver's call returns by its context's deadline
		case <-time.After(2 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s := NewSender(tr)
	c := s.coalescer("t")
	var wg sync.WaitGroup
	var late sync.Mutex
	var lateBy time.Duration
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wait := time.Duration(rand.IntN(4000)) * time.Microsecond
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			start := time.Now()
			err := s.Send(ctx, "t", []*driver.Message{{ID: fmt.Sprint("m", i)}})
			over := time.Since(start) - wait
			late.Lock()
			lateBy = max(lateBy, over)
			late.Unlock()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("publish %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	s.calls.Wait()
	c.mu.Lock()
	inFlight, queued := c.inFlight, len(c.queue)
	c.mu.Unlock()
	if inFlight != 0 || queued != 0 {
		t.Fatalf("after every publish returned: %d slots taken, %d queued; want none", inFlight, queued)
	}
	// A publish's own call runs with its own context: a driver returns by
	// its deadline. Allow scheduling, not a round trip of others' calls.
	if lateBy > 50*time.Millisecond {
		t.Errorf("a publish returned %v after its deadline", lateBy)
	}
	if err := s.Send(context.Background(), "t", msgs(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// A lead that fills calls waits for the publishers the last call answered
// and sends them together; without FillCalls it sends what is queued.
func TestFillCallsWaitsForThePublishersTheLastCallAnswered(t *testing.T) {
	for _, fill := range []bool{true, false} {
		t.Run(fmt.Sprint("FillCalls=", fill), func(t *testing.T) {
			tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, MaxMessages: 10, MaxInFlight: 1, FillCalls: fill},
				send: func(int, []*driver.Message) error { time.Sleep(10 * time.Millisecond); return nil }}
			s := NewSender(tr)
			defer s.Close()
			// 8 publishers, 20 messages each, one at a time.
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						if err := s.Send(context.Background(), "t", []*driver.Message{{ID: fmt.Sprintf("g%d-%d", g, i)}}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			perCall := 160 / float64(len(tr.calls))
			t.Logf("%d calls, %.1f messages a call", len(tr.calls), perCall)
			if fill && perCall < 7 {
				t.Errorf("with FillCalls, 8 publishers behind one 10 ms call slot filled %.1f messages a call; want at least 7", perCall)
			}
			for _, call := range tr.calls {
				if len(call) > 10 {
					t.Fatalf("a call carried %d messages, over MaxMessages 10", len(call))
				}
			}
		})
	}
}

// Where the broker keeps no order (Unordered), a publish larger than one
// call sends its calls at once, up to MaxInFlight, and retries only the
// call that failed.
func TestUnorderedLargePublishSendsItsCallsAtOnce(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	tr := &fakeTransport{opts: driver.SendOptions{Coalesce: true, Unordered: true, MaxMessages: 10, MaxInFlight: 4},
		send: func(call int, _ []*driver.Message) error {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // long enough for the other calls to start
			mu.Lock()
			running--
			mu.Unlock()
			if call == 2 {
				return errFlaky
			}
			return nil
		}}
	s := NewSender(tr)
	defer s.Close()
	if err := s.Send(context.Background(), "t", msgs(35)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, c := range tr.calls {
		for _, id := range c {
			seen[id]++
		}
	}
	if len(seen) != 35 || len(tr.calls) != 5 || most != 4 {
		t.Fatalf("want 4 calls at once carrying m0..m34, and one retry of the failed call; got %d calls, %d at once at most, %d distinct messages: %v",
			len(tr.calls), most, len(seen), tr.calls)
	}
}
