package conformance

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// longNameLengths are topic and group name lengths past what most brokers
// take: just past the 255 bytes of AMQP short strings and JetStream names,
// and past 64 KiB, more than a broker's whole control line or request
// header.
var longNameLengths = []int{300, 70000}

// maxErrorBytes bounds the text of an error about a long name: it names
// the name (abbreviated), not every byte of it, several times over.
const maxErrorBytes = 4 << 10

// filler matches the filler of a long name, to shorten it in failures.
var filler = regexp.MustCompile(`x{20,}`)

// testLongNames: a topic or group name longer than the broker takes is
// refused by the call that uses it, by its deadline, with an error a
// person can read (it does not repeat the whole name), and nothing else
// on the transport is harmed: messages on other topics still flow. Where
// the broker takes the name, it works like any other: what is published
// to it is delivered.
func testLongNames(e *env) {
	c := e.client()
	ok := make(chan *sdk.Message, 1)
	if _, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
		ok <- m
		return nil
	}); err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	for _, n := range longNameLengths {
		long := uniqueName("long") + "-" + strings.Repeat("x", n)
		e.longTopic(c, long)
		e.longGroup(c, long)
		// The transport still carries other topics' messages.
		m := &sdk.Message{Payload: []byte(fmt.Sprintf("after a %d-byte name", len(long)))}
		if err := e.publishBounded(c, e.topic, m); err != nil {
			e.t.Fatalf("guarantee broken: after a %d-byte topic or group name was used, publishing to another topic must still work, got %v", len(long), err)
		}
		if got := e.awaitClient(ok, fmt.Sprintf("a message published after a %d-byte topic or group name was used", len(long))); string(got.Payload) != string(m.Payload) {
			e.t.Fatalf("guarantee broken: after a %d-byte name was used the next message on another topic must be delivered: got %q, want %q", len(long), got.Payload, m.Payload)
		}
	}
}

// longTopic subscribes to and publishes to topic: each call returns by its
// deadline; an error is short; when both work the message arrives.
func (e *env) longTopic(c *sdk.Client, topic string) {
	e.t.Helper()
	got := make(chan *sdk.Message, 1)
	subErr := e.bounded(fmt.Sprintf("Subscribe to a %d-byte topic", len(topic)), func(ctx context.Context) error {
		sub, err := c.Subscribe(ctx, topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
			select {
			case got <- m:
			default:
			}
			return nil
		})
		if err == nil {
			e.t.Cleanup(func() { _ = sub.Close(context.Background()) })
		}
		return err
	})
	e.checkShortError(subErr, fmt.Sprintf("Subscribe to a %d-byte topic", len(topic)))
	m := &sdk.Message{Payload: []byte("to a long topic")}
	pubErr := e.publishBounded(c, topic, m)
	e.checkShortError(pubErr, fmt.Sprintf("Publish to a %d-byte topic", len(topic)))
	e.t.Logf("a %d-byte topic: Subscribe: %s; Publish: %s", len(topic), outcome(subErr), outcome(pubErr))
	if subErr == nil && pubErr == nil {
		e.awaitClient(got, fmt.Sprintf("a message published to a %d-byte topic the broker took", len(topic)))
	}
}

// longGroup subscribes in a group named group, on a topic of its own (a
// driver that takes one group per topic refuses a second one before it
// looks at the name); when the broker takes the group, it gets what is
// published.
func (e *env) longGroup(c *sdk.Client, group string) {
	e.t.Helper()
	what := fmt.Sprintf("Subscribe in a %d-byte group", len(group))
	topic := uniqueName("t")
	got := make(chan *sdk.Message, 1)
	err := e.bounded(what, func(ctx context.Context) error {
		sub, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
			select {
			case got <- m:
			default:
			}
			return nil
		})
		if err == nil {
			e.t.Cleanup(func() { _ = sub.Close(context.Background()) })
		}
		return err
	})
	e.checkShortError(err, what)
	e.t.Logf("a %d-byte group: Subscribe: %s", len(group), outcome(err))
	if err != nil {
		return
	}
	if err := e.publishBounded(c, topic, &sdk.Message{Payload: []byte("to a long group")}); err != nil {
		e.t.Fatalf("guarantee broken: a %d-byte group was taken, so publishing to its topic must work, got %v", len(group), err)
	}
	e.awaitClient(got, fmt.Sprintf("a message for a %d-byte group the broker took", len(group)))
}

func (e *env) publishBounded(c *sdk.Client, topic string, m *sdk.Message) error {
	return e.bounded(fmt.Sprintf("Publish to a %d-byte topic", len(topic)), func(ctx context.Context) error {
		return c.Publish(ctx, topic, m)
	})
}

// bounded runs call with the harness timeout as its deadline and fails the
// test when it has not returned a little after it.
func (e *env) bounded(what string, call func(ctx context.Context) error) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(e.h.Timeout + 5*time.Second):
		e.t.Fatalf("guarantee broken: %s must return by its deadline (%v): it had not after %v", what, e.h.Timeout, e.h.Timeout+5*time.Second)
		return nil
	}
}

func (e *env) checkShortError(err error, what string) {
	e.t.Helper()
	if err != nil && len(err.Error()) > maxErrorBytes {
		e.t.Fatalf("guarantee broken: an error about a long name must name it abbreviated: %s failed with a %d-byte error (runs of x shortened here): %s",
			what, len(err.Error()), filler.ReplaceAllString(err.Error(), "xxx..."))
	}
}

// outcome says in a log line what a call did.
func outcome(err error) string {
	if err == nil {
		return "taken"
	}
	return "refused: " + filler.ReplaceAllString(err.Error(), "xxx...")
}
