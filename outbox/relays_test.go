package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// stuck holds every Publish until it is let go: a relay hung on a slow or
// unreachable broker, holding its batch.
type stuck struct {
	inner    outbox.Publisher
	started  chan struct{} // closed by the first Publish
	start    sync.Once
	released chan struct{}
	release  sync.Once
}

// newStuck returns a stuck publisher that lets go at the latest when the
// test ends, so that a failed test does not leave a relay hanging.
func newStuck(t *testing.T, inner outbox.Publisher) *stuck {
	s := &stuck{inner: inner, started: make(chan struct{}), released: make(chan struct{})}
	t.Cleanup(s.letGo)
	return s
}

func (s *stuck) letGo() { s.release.Do(func() { close(s.released) }) }

func (s *stuck) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	s.start.Do(func() { close(s.started) })
	<-s.released
	return s.inner.Publish(ctx, topic, msgs...)
}

// runInBackground runs one RunOnce of r and returns its outcome.
func runInBackground(r *outbox.Relay) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := r.RunOnce(context.Background())
		done <- err
	}()
	return done
}

func TestSecondRelaySkipsTheKeysTheFirstHolds(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		e.order("o1", true, keyed("a", 1), keyed("a", 2), keyed("b", 1), sdk.NewMessage([]byte("no key")))

		hold := newStuck(t, e.client)
		first := e.relay(outbox.RelayConfig{Name: "first", BatchSize: 1, Publisher: hold})
		firstDone := runInBackground(first)
		testenv.Await(t, hold.started, "the first relay to claim a-1 and start publishing it")

		second := e.relay(outbox.RelayConfig{Name: "second"})
		n, err := second.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("while the first relay holds a-1, the second must publish b-1 and the unkeyed message and not a-2: published %d, want 2", n)
		}
		hold.letGo()
		if err := testenv.Await(t, firstDone, "the first relay to finish"); err != nil {
			t.Fatalf("the first relay: %v", err)
		}
		if n, err := second.RunOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("once a-1 is out, a-2 is next: published %d, %v; want 1", n, err)
		}
		testenv.Eventually(t, 10*time.Second, "all four messages to be consumed", func() bool { return got.distinct() == 4 })
		got.checkOrder(t)
	})
}

func TestHungRelayLosesItsBatchToAnotherAfterTheLease(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		e.order("o1", true, keyed("a", 1), keyed("a", 2), keyed("a", 3))

		const lease = time.Second
		hold := newStuck(t, e.client)
		hung := e.relay(outbox.RelayConfig{Name: "hung", Lease: lease, PublishAttempts: 1, Publisher: hold})
		claimed := time.Now()
		hungDone := runInBackground(hung)
		testenv.Await(t, hold.started, "the hung relay to claim the batch")

		survivor := e.relay(outbox.RelayConfig{Name: "survivor"})
		testenv.Eventually(t, 10*time.Second, "the survivor to publish the hung relay's batch", func() bool {
			n, err := survivor.RunOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 && time.Since(claimed) < lease {
				t.Fatalf("the survivor published %d message(s) %v after the hung relay claimed them, before its %v lease ended", n, time.Since(claimed), lease)
			}
			return n == 3
		})
		testenv.Eventually(t, 10*time.Second, "the survivor's three messages to be consumed", func() bool { return got.distinct() == 3 })
		got.checkOrder(t)

		// The hung relay comes back and publishes what it held, again: at
		// least once. Marking finds the rows gone, which is no failure.
		hold.letGo()
		if err := testenv.Await(t, hungDone, "the hung relay to return"); err != nil {
			t.Fatalf("the hung relay: %v", err)
		}
		e.requireNothingUnsent("nothing may be left unsent")
	})
}

// slow takes a fixed time over every Publish: a broker slower than the
// relay's lease. The duration is what the test is about, not a wait for
// something to happen.
type slow struct {
	inner outbox.Publisher
	delay time.Duration
}

func (s *slow) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	time.Sleep(s.delay)
	return s.inner.Publish(ctx, topic, msgs...)
}

func TestBatchSlowerThanTheLeaseIsStillMarked(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		e.order("o1", true, keyed("a", 1), keyed("a", 2))
		const lease = 300 * time.Millisecond
		relay := e.relay(outbox.RelayConfig{Lease: lease, Publisher: &slow{inner: e.client, delay: 3 * lease}})
		if n, err := relay.RunOnce(context.Background()); err != nil || n != 2 {
			t.Fatalf("a batch that outlasts the lease with no other relay about must still be marked: published %d, %v", n, err)
		}
		e.requireNothingUnsent("the slow batch must be marked, or the relay publishes it for ever")
		testenv.Eventually(t, 10*time.Second, "both messages to be consumed", func() bool { return got.distinct() == 2 })
		if d := got.duplicates(); d != 0 {
			t.Fatalf("%d duplicates with one relay", d)
		}
	})
}

func TestRelayStoppedRightAfterPublishingStillMarks(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		e.order("o1", true, keyed("a", 1), keyed("a", 2))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		relay := e.relay(outbox.RelayConfig{Publisher: &stopAfterPublish{inner: e.client, cancel: cancel}})
		if n, err := relay.RunOnce(ctx); err != nil || n != 2 {
			t.Fatalf("RunOnce: published %d, %v; want 2 and no error", n, err)
		}
		e.requireNothingUnsent("what went out before the stop must be marked, or it goes out again")
	})
}

// A relay's batch on PostgreSQL holds a pooled connection. A relay told to
// stop must not wait for one, and a batch that outlived its transaction
// must give its connection back before marking again: the pool may have no
// other.
func TestPostgresRelayWithAPoolOfOneConnection(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	e.order("o1", true, keyed("a", 1), keyed("a", 2))
	e.db.SetMaxOpenConns(1)

	busy, err := e.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // a failed test must not keep the pool's one connection
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.relay(outbox.RelayConfig{}).RunOnce(ctx)
		done <- err
	}()
	if err := testenv.Await(t, done, "a relay told to stop while the pool is busy to return"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RunOnce should end with its context, got %v", err)
	}
	busy.Close()

	const lease = 300 * time.Millisecond
	slowRelay := e.relay(outbox.RelayConfig{Lease: lease, Publisher: &slow{inner: e.client, delay: 3 * lease}})
	if n, err := slowRelay.RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("a batch that outlived its transaction must be marked on the pool's one connection: published %d, %v", n, err)
	}
	e.requireNothingUnsent("nothing may be left unsent")

	// Run LISTENs on a connection of its own, for good; with one in the
	// pool it must poll instead, or it never relays anything.
	got := e.consume("billing")
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	running := make(chan error, 1)
	go func() { running <- e.relay(outbox.RelayConfig{MaxPoll: 50 * time.Millisecond}).Run(ctx) }()
	e.order("o2", true, keyed("b", 1))
	testenv.Eventually(t, 10*time.Second, "Run on a pool of one connection to relay a new message", func() bool { return got.distinct() == 1 })
	cancel()
	testenv.Await(t, running, "Run to end with its context")
}
