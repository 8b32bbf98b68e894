package nats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// endedContext has ended, but tells no one: no Done channel, so a context
// derived from it is still live. It stands for the engine's fetch context
// ending between the moment a message is taken from the pull inbox and the
// moment ReceiveBatch looks at the context again.
type endedContext struct{ context.Context }

func (endedContext) Done() <-chan struct{} { return nil }
func (endedContext) Err() error            { return context.Canceled }

// A message ReceiveBatch has taken from the inbox is returned even when its
// context ended meanwhile. Dropped, it would stay with this member,
// unhandled and not handed back on Close, until ack_wait: Watermill's
// TestSubscribeCtx saw one of 20 messages missing that way.
func TestReceiveBatchReturnsAMessageTakenAsItsContextEnds(t *testing.T) {
	url := testenv.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := Driver{}.Open(ctx, sdk.Config{Driver: DriverName, URL: url})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer tr.Close()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	topic := "receive-ended-" + hex.EncodeToString(b)
	ds, err := tr.OpenSubscription(ctx, topic, "g")
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub := ds.(*subscription)
	defer sub.Close()
	if err := tr.SendBatch(ctx, topic, []*driver.Message{{ID: "m1", Payload: []byte("kept"), Metadata: map[string]string{}}}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := sub.pullMore(10); err != nil {
		t.Fatalf("pull: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the pulled message in the inbox", func() bool {
		n, _, _ := sub.sub.Pending()
		return n > 0
	})

	got, err := sub.ReceiveBatch(endedContext{context.Background()}, 10)
	if err != nil {
		t.Fatalf("ReceiveBatch: %v", err)
	}
	if len(got) != 1 || string(got[0].Payload) != "kept" {
		t.Fatalf("ReceiveBatch returned %d messages, want the one it took from the inbox", len(got))
	}
	sub.mu.Lock()
	pulls := len(sub.pulls.open)
	sub.mu.Unlock()
	if pulls != 1 {
		t.Errorf("%d pulls open after a receive whose context had ended, want only the first", pulls)
	}
}
