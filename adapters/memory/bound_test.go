package memory_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func msgs(n, size int) []*driver.Message {
	out := make([]*driver.Message, n)
	for i := range out {
		out[i] = &driver.Message{ID: "m", Payload: make([]byte, size)}
	}
	return out
}

// A group at its limit makes Publish wait for room: until its context
// ends, failing with an error that names the group and the limit, or until
// a consumer takes messages, when the waiting Publish goes through.
func TestPublishWaitsWhileAGroupIsFull(t *testing.T) {
	for _, c := range []struct {
		name       string
		opts       map[string]string
		n, size    int
		wantInFull string
	}{
		{"messages", map[string]string{"max_queued": "10"}, 10, 1, "max_queued 10"},
		{"bytes", map[string]string{"max_queued_bytes": "1000"}, 2, 500, "max_queued_bytes 1000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := memory.Driver{}.Open(context.Background(), sdk.Config{Options: c.opts})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ctx := context.Background()
			sub, err := tr.OpenSubscription(ctx, "orders", "billing")
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := tr.SendBatch(ctx, "orders", msgs(c.n, c.size)); err != nil {
				t.Fatalf("publishing up to the limit: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			err = tr.SendBatch(short, "orders", msgs(1, c.size))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `group "billing"`) || !strings.Contains(err.Error(), c.wantInFull) {
				t.Fatalf("publishing to a full group must wait and fail by the deadline naming the group and %q, got %v", c.wantInFull, err)
			}

			done := make(chan error, 1)
			waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			go func() { done <- tr.SendBatch(waitCtx, "orders", msgs(1, c.size)) }()
			select {
			case err := <-done:
				t.Fatalf("Publish must wait while the group is full, it returned %v", err)
			case <-time.After(50 * time.Millisecond): // no signal exists for "still blocked"
			}
			got, err := sub.ReceiveBatch(ctx, 1)
			if err != nil || len(got) != 1 {
				t.Fatalf("receive: %d messages, %v", len(got), err)
			}
			if err := <-done; err != nil {
				t.Fatalf("a consumer took a message: the waiting Publish must go through, got %v", err)
			}
		})
	}
}

// A topic without a group keeps nothing, so it never fills; a broker
// closed under a waiting Publish ends it.
func TestWaitingPublishEndsWithTheBroker(t *testing.T) {
	tr, err := memory.NewWithOptions(memory.Options{MaxQueued: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 5 {
		if err := tr.SendBatch(ctx, "nobody-listens", msgs(1, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.OpenSubscription(ctx, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	if err := tr.SendBatch(ctx, "orders", msgs(1, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.SendBatch(ctx, "orders", msgs(1, 1)) }()
	time.Sleep(20 * time.Millisecond) // let it start waiting; either order must end it
	_ = tr.Close()
	select {
	case err := <-done:
		if !errors.Is(err, sdk.ErrClosed) {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Publish waiting for room must end when the broker closes")
	}
}

func TestSharedBrokerLimitsMustAgree(t *testing.T) {
	url := "memory://limits-" + strings.ReplaceAll(t.Name(), "/", "-")
	a, err := memory.Driver{}.Open(context.Background(), sdk.Config{URL: url, Options: map[string]string{"max_queued": "5"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = memory.Driver{}.Open(context.Background(), sdk.Config{URL: url, Options: map[string]string{"max_queued": "6"}})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "max_queued 5") {
		t.Fatalf("a second Open of one named broker with other limits must be a ConfigError naming them, got %v", err)
	}
	if _, err := memory.NewWithOptions(memory.Options{MaxQueued: -1}); !errors.As(err, &ce) {
		t.Fatalf("a negative limit must be a ConfigError, got %v", err)
	}
}
