package nats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// The longest topic the driver sends, in a group whose name is past
// JetStream's 255 bytes, round-trips: every request it goes into (the
// consumer's creation holds the stream and consumer names beside it) fits
// the server's control line. One byte more is refused before anything is
// sent, and the connection carries on.
func TestLongestTopicRoundTrips(t *testing.T) {
	url := testenv.NATS(t)
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.NewClient(tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() { _ = c.Close(context.Background()) })

	topic := "ct-longest." + strings.Repeat("abcdefghi.", 306)
	topic += strings.Repeat("z", 3072-len(topic))
	group := "ct-" + strings.Repeat("g", 400)
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatalf("subscribe to a %d-byte topic in a %d-byte group: %v", len(topic), len(group), err)
	}
	if err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte("longest")}); err != nil {
		t.Fatalf("publish to a %d-byte topic: %v", len(topic), err)
	}
	select {
	case p := <-got:
		if p != "longest" {
			t.Fatalf("got %q, want %q", p, "longest")
		}
	case <-ctx.Done():
		t.Fatalf("a message published to a %d-byte topic did not arrive", len(topic))
	}

	over := topic + "z"
	err = c.Publish(ctx, over, &sdk.Message{Payload: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "max_control_line") || len(err.Error()) > 1000 {
		t.Fatalf("publish to a %d-byte topic: want a short error naming the server's control line, got %v", len(over), err)
	}
	if err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte("after")}); err != nil {
		t.Fatalf("publish after a refused topic: %v", err)
	}
	select {
	case p := <-got:
		if p != "after" {
			t.Fatalf("got %q, want %q", p, "after")
		}
	case <-ctx.Done():
		t.Fatal("a message published after a refused topic did not arrive")
	}
}
