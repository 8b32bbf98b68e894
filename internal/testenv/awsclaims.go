package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/sdk"
)

// openAWS opens a Client of the sqs or sns driver on url, closed when the
// test ends.
func openAWS(t *testing.T, driverName, url string) *sdk.Client {
	t.Helper()
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: driverName, URL: url, Options: AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// publishWithin publishes one message, bounded by 15s.
func publishWithin(c *sdk.Client, topic, payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.Publish(ctx, topic, &sdk.Message{Payload: []byte(payload)})
}

// collect subscribes c to topic and group and returns the payloads handled.
func collect(t *testing.T, c *sdk.Client, topic, group string) <-chan string {
	t.Helper()
	got := make(chan string, 10)
	if _, err := c.Subscribe(context.Background(), topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// expectPayloads waits up to 15s for each of want, in any order.
func expectPayloads(t *testing.T, got <-chan string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for range want {
		select {
		case p := <-got:
			seen[p] = true
		case <-time.After(15 * time.Second):
			t.Fatalf("got %v of %v within 15s", seen, want)
		}
	}
	for _, p := range want {
		if !seen[p] {
			t.Fatalf("got %v, want %v", seen, want)
		}
	}
}

// CheckTopicsMappedToOneName checks, for the sqs or sns driver on the
// emulator, that two topics whose names map to one queue or SNS topic
// (orders.created, orders-created) are not both used: a publish or
// Subscribe to the second is refused with an error holding refusal (with
// %q standing for the first topic) and "Rename one", whether the first
// one's subscriber or its publisher came first, and the first topic's
// consumer gets only its own messages.
func CheckTopicsMappedToOneName(t *testing.T, driverName, refusal string) {
	t.Helper()
	endpoint := AWSEndpoint(t)
	refusedFor := func(err error, first string) bool {
		return errors.Is(err, sdk.ErrInvalidName) && strings.Contains(err.Error(), strings.ReplaceAll(refusal, "%q", `"`+first+`"`)) &&
			strings.Contains(err.Error(), "Rename one")
	}
	none := func(context.Context, *sdk.Message) error { return nil }
	c, other := openAWS(t, driverName, endpoint), openAWS(t, driverName, endpoint)
	id := uuid.NewString()[:8]
	dotted, dashed := "ct-map."+id, "ct-map-"+id
	got := collect(t, c, dotted, "billing")
	for _, cl := range []*sdk.Client{c, other} {
		if err := publishWithin(cl, dashed, "not for "+dotted); !refusedFor(err, dotted) {
			t.Fatalf("topic %q maps to the name of %q: Publish must be refused naming it, got %v", dashed, dotted, err)
		}
		if _, err := cl.Subscribe(context.Background(), dashed, "billing", none); !refusedFor(err, dotted) {
			t.Fatalf("topic %q maps to the name of %q: Subscribe must be refused naming it, got %v", dashed, dotted, err)
		}
	}
	for _, p := range []string{"own 1", "own 2"} {
		if err := publishWithin(other, dotted, p); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m != p {
				t.Fatalf("the consumer of %q got %q, want %q", dotted, m, p)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the consumer of %q did not get %q within 15s", dotted, p)
		}
	}

	// The publisher first: its claim makes the other topic's publishes and
	// subscriptions fail.
	first, second := "ct-mapfirst-"+id, "ct-mapfirst."+id
	if err := publishWithin(other, first, "first"); err != nil {
		t.Fatal(err)
	}
	if err := publishWithin(c, second, "second"); !refusedFor(err, first) {
		t.Fatalf("topic %q maps to the name %q's publisher claimed: Publish must be refused naming it, got %v", second, first, err)
	}
	if _, err := c.Subscribe(context.Background(), second, "billing", none); !refusedFor(err, first) {
		t.Fatalf("topic %q maps to the name %q's publisher claimed: Subscribe must be refused naming it, got %v", second, first, err)
	}
}

// CheckPublishWithoutTagPermissions checks, for the sqs or sns driver,
// that a publisher whose tag calls are answered with code (its policy does
// not grant them) publishes unchecked instead of failing, and reads the
// tags (action read) only once per topic.
func CheckPublishWithoutTagPermissions(t *testing.T, driverName, read, tag, code string) {
	t.Helper()
	endpoint := AWSEndpoint(t)
	proxy := NewAWSProxy(t, endpoint)
	proxy.Deny(read, code)
	proxy.Deny(tag, code)
	publisher, consumer := openAWS(t, driverName, proxy.URL), openAWS(t, driverName, endpoint)
	topic := "ct-denied-" + uuid.NewString()[:8]
	got := collect(t, consumer, topic, "billing")
	want := []string{"a", "b", "c"}
	for _, p := range want {
		if err := publishWithin(publisher, topic, p); err != nil {
			t.Fatalf("a publish whose tag calls are denied must go unchecked, got %v", err)
		}
	}
	if n := proxy.Calls(read); n != 1 {
		t.Fatalf("three publishes to one topic called %s %d times, want once", read, n)
	}
	expectPayloads(t, got, want...)
}
