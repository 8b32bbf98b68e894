package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/sdk/driver"
)

func TestBackoffDoublesUpToItsMax(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{0, 100, 200, 400, 800, 1000, 1000}
	for failures, w := range want {
		if got := b.Delay(failures); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", failures, got, w*time.Millisecond)
		}
	}
	if got := b.Delay(1 << 20); got != time.Second {
		t.Errorf("Delay after a million failures = %v, want the max", got)
	}
	if got := (Backoff{Max: time.Second}).Delay(3); got != 0 {
		t.Errorf("no Initial means no backoff, got %v", got)
	}
}

// Where the broker cannot wait, a nacked message is held here for its
// delay, with the later messages of its key (those already held and those
// that arrive meanwhile), while the rest of the group's messages run.
func TestNackIsHeldForItsDelayWithItsKeyWhileOthersRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	const delay = 300 * time.Millisecond
	sub := newFakeSub(true, msg("a1", "k"), msg("a2", "k"), msg("b1", ""))
	start := time.Now()
	r := Start(sub, func(m *driver.Message) bool { return m.ID != "a1" }, Config{Concurrency: 2, NackBackoff: Backoff{Initial: delay}})
	waitFor(t, "b1 acked", func() bool { acks, _ := sub.settled(); return slices.Contains(acks, "b1") })
	if _, nacks := sub.settled(); len(nacks) != 0 {
		t.Fatalf("the nack of a1 went out before its delay: %v", nacks)
	}
	late := msg("a3", "k")
	late.AckID = late.ID
	sub.mu.Lock()
	sub.queue = append(sub.queue, late)
	sub.mu.Unlock()
	sub.more <- struct{}{}
	waitFor(t, "a1 handed back", func() bool { _, nacks := sub.settled(); return len(nacks) == 1 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if waited := sub.nackTime[0].Sub(start); waited < delay {
		t.Fatalf("a1 was handed back after %v, before its %v delay", waited, delay)
	}
	if !slices.Equal(sub.nacks[0], []string{"a1", "a2", "a3"}) || sub.nackDelay[0] != 0 {
		t.Fatalf("want a1 handed back with a2 and the later a3, in order, with no delay left for the broker: nacks %v delays %v", sub.nacks, sub.nackDelay)
	}
	if slices.Contains(sub.acks, "a2") || slices.Contains(sub.acks, "a3") {
		t.Fatalf("a later message of a held key ran before it: acks %v", sub.acks)
	}
}

// Where the broker can wait (SQS visibility, a JetStream NAK delay), the
// delay goes to it at once, grown from the broker's delivery count.
func TestNackDelayGoesToABrokerThatWaits(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := msg("a1", "")
	m.Attempt = 3 // the broker's third delivery of it
	sub := newFakeSub(true, m)
	sub.opts.DelaysNacks = true
	r := Start(sub, func(*driver.Message) bool { return false }, Config{NackBackoff: Backoff{Initial: time.Second, Max: time.Hour}})
	waitFor(t, "a1 nacked", func() bool { _, nacks := sub.settled(); return len(nacks) == 1 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sub.nackDelay[0]; got != 4*time.Second {
		t.Fatalf("the third failed delivery should wait 4s (1s doubled twice), SendNacks got %v", got)
	}
}

// Stop hands back held nacks at once instead of waiting out their delay.
func TestStopHandsBackHeldNacksAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := newFakeSub(true, msg("a1", "k"))
	failed := make(chan struct{})
	var once sync.Once
	r := Start(sub, func(*driver.Message) bool { once.Do(func() { close(failed) }); return false }, Config{NackBackoff: Backoff{Initial: time.Hour}})
	<-failed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, nacks := sub.settled(); len(nacks) != 1 || !slices.Equal(nacks[0], []string{"a1"}) {
		t.Fatalf("Stop must hand back the held nack: %v", nacks)
	}
}

// Where the engine redelivers itself, each failure of a message makes its
// next delivery wait twice as long.
func TestLocalRedeliveryBacksOff(t *testing.T) {
	defer goleak.VerifyNone(t)
	const initial = 50 * time.Millisecond
	sub := newFakeSub(false, msg("a1", ""))
	var mu sync.Mutex
	var calls []time.Time
	r := Start(sub, func(*driver.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, time.Now())
		return len(calls) == 4
	}, Config{NackBackoff: Backoff{Initial: initial}})
	waitFor(t, "a1 acked on its fourth delivery", func() bool { acks, _ := sub.settled(); return len(acks) == 1 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(calls); i++ {
		if gap, want := calls[i].Sub(calls[i-1]), initial<<(i-1); gap < want {
			t.Fatalf("delivery %d came %v after the one before, want at least %v", i+1, gap, want)
		}
	}
}
