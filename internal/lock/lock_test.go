package lock

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A waiter gives up when its context ends; the lock then goes to the next.
func TestLockGivesUpAtTheContextsEnd(t *testing.T) {
	var m Mutex
	if err := m.Lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := m.Lock(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held Mutex must fail with the context's error, got %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Lock returned %v after its deadline", took)
	}
	got := make(chan error, 1)
	go func() { got <- m.Lock(context.Background()) }()
	m.Unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Unlock did not hand the lock to the waiter within 5s")
	}
	m.Unlock()
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := m.Lock(done); err != nil {
		t.Fatalf("a free Mutex must be taken even with an ended context, got %v", err)
	}
}
