package engine

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

type traceKey struct{}

// A publish whose context can never end is bounded by the driver's
// Timeout (to within a hundredth), keeps its context's values, and ends
// with a deadline error when the driver does not answer.
func TestAPublishWithoutDeadlineIsBoundedByTheTimeoutAndKeepsItsValues(t *testing.T) {
	const timeout = 200 * time.Millisecond
	type seen struct {
		deadline time.Time
		value    any
	}
	calls := make(chan seen, 1)
	tr := &fakeTransport{opts: driver.SendOptions{Timeout: timeout}, send: func(int, []*driver.Message) error { return nil },
		sendCtx: func(ctx context.Context, _ []*driver.Message) error {
			d, ok := ctx.Deadline()
			if !ok {
				return errors.New("no deadline")
			}
			calls <- seen{d, ctx.Value(traceKey{})}
			<-ctx.Done() // a broker that does not answer
			return ctx.Err()
		}}
	s := NewSender(tr)
	defer s.Close()
	ctx := context.WithValue(context.Background(), traceKey{}, "trace-1")
	start := time.Now()
	err := s.Send(ctx, "t", msgs(1))
	took := time.Since(start)
	got := <-calls
	if got.value != "trace-1" {
		t.Errorf("the driver saw value %v, want the publish context's trace-1", got.value)
	}
	if d := got.deadline.Sub(start); d > timeout+10*time.Millisecond || d < timeout-timeout/100-10*time.Millisecond {
		t.Errorf("deadline %v after the publish started, want within a hundredth below %v", d, timeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) || took < timeout-timeout/100-10*time.Millisecond || took > 5*timeout {
		t.Errorf("Send returned %v after %v, want a deadline error after about %v", err, took, timeout)
	}
}

// Publishes that start close together share one timer; a context derived
// from theirs joins the shared one's cancellation instead of starting a
// goroutine to watch it. A publish on context.Background, which carries
// no values, gets the shared context itself.
func TestPublishesWithoutDeadlineShareATimer(t *testing.T) {
	d := deadlines{timeout: time.Hour}
	a := d.bound(context.WithValue(context.Background(), traceKey{}, "a"))
	b := d.bound(context.WithValue(context.TODO(), traceKey{}, "b"))
	if a.(boundContext).shared != b.(boundContext).shared {
		t.Fatal("two publishes a moment apart got timers of their own")
	}
	if a.Value(traceKey{}) != "a" || b.Value(traceKey{}) != "b" {
		t.Errorf("bound contexts carry %v and %v, want their own values a and b", a.Value(traceKey{}), b.Value(traceKey{}))
	}
	if bg := d.bound(context.Background()); bg != a.(boundContext).shared {
		t.Errorf("a publish on context.Background got %T, want the shared timer context itself", bg)
	}
	if _, ok := d.bound(context.TODO()).Deadline(); !ok {
		t.Error("a publish on context.TODO got no deadline")
	}
	before := runtime.NumGoroutine()
	children := make([]context.CancelFunc, 100)
	for i := range children {
		_, children[i] = context.WithCancel(a)
	}
	if n := runtime.NumGoroutine() - before; n > 10 {
		t.Errorf("100 contexts derived from a bound one started %d goroutines", n)
	}
	for _, cancel := range children {
		cancel()
	}
}
