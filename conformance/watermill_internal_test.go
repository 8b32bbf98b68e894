package conformance

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// stuckPublisher is a Watermill publisher on a broker that never answers:
// it hands over what it was given, and Publish returns when the first
// message's context ends.
type stuckPublisher struct{ got chan []*message.Message }

func (p stuckPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.got <- msgs
	<-msgs[0].Context().Done()
	return msgs[0].Context().Err()
}

func (p stuckPublisher) Close() error { return nil }

// A Publish of the Watermill suite's messages, which carry no deadline,
// ends after watermillPublishWait and says so; the suite's messages are
// published unchanged and keep their own context. A message with a
// deadline of its own is published as it is.
func TestWatermillSuitePublishIsBounded(t *testing.T) {
	defer func(d time.Duration) { watermillPublishWait = d }(watermillPublishWait)
	watermillPublishWait = 200 * time.Millisecond
	stuck := stuckPublisher{got: make(chan []*message.Message, 2)}

	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	own := message.NewMessage("c", nil)
	own.SetContext(short)
	if err := (boundedPublisher{stuck}).Publish("t", own); !errors.Is(err, context.DeadlineExceeded) || (<-stuck.got)[0] != own {
		t.Fatalf("a message with a deadline of its own was not published as it is: %v", err)
	}

	msgs := []*message.Message{message.NewMessage("a", []byte("1")), message.NewMessage("b", []byte("2"))}
	msgs[0].Metadata.Set("k", "v")
	start := time.Now()
	err := boundedPublisher{stuck}.Publish("t", msgs...)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "the conformance suite gives a Watermill Publish") {
		t.Fatalf("Publish on a broker that does not answer returned %v", err)
	}
	if took := time.Since(start); took < watermillPublishWait || took > 10*time.Second {
		t.Fatalf("Publish returned after %v, want %v", took, watermillPublishWait)
	}
	got := <-stuck.got
	if got[0].UUID != "a" || string(got[0].Payload) != "1" || got[0].Metadata.Get("k") != "v" || got[1] != msgs[1] {
		t.Fatalf("the messages published are not the suite's: %q %q %v", got[0].UUID, got[0].Payload, got[0].Metadata)
	}
	if _, ok := msgs[0].Context().Deadline(); ok {
		t.Fatal("the suite's own message was given a deadline")
	}
}
