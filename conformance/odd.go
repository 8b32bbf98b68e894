package conformance

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// oddNames are what follows a unique prefix in the topic and group names
// the suite tries: past the 255 bytes of AMQP short strings and JetStream
// names, past 64 KiB (more than a broker's whole request line or header),
// and bytes some brokers refuse or change: not ASCII, spaces, control
// characters, invalid UTF-8, separators and wildcards.
var oddNames = []string{
	strings.Repeat("x", 300), strings.Repeat("x", 70000),
	"заказы", "a b", "a\x00b", "a\nb", "a\xffb", "a/b:c#d", "a*b>c", "a.b",
}

// maxErrorBytes bounds the text of an error about a name: it names the
// name (abbreviated when long), not every byte of it, several times over.
const maxErrorBytes = 4 << 10

// filler matches the filler of a long name, to shorten it in failures.
var filler = regexp.MustCompile(`x{20,}|i{20,}`)

// testOddNames: a topic or group name the broker cannot take (too long,
// bytes it refuses) is refused by the call that uses it, by its deadline,
// with an error a person can read (it does not repeat a long name whole),
// and nothing else on the transport is harmed: messages on other topics
// still flow. Where the broker takes the name, it works like any other:
// what is published to it is delivered.
func testOddNames(e *env) {
	c, got := e.clientInbox()
	for _, odd := range oddNames {
		name := uniqueName("long") + "-" + odd
		if len(odd) < 100 {
			name = uniqueName("odd") + "-" + odd
		}
		e.oddTopic(c, name)
		e.oddGroup(c, name)
		e.stillCarries(c, got, "the topic or group name "+sdk.QuoteName(name)+" was used")
	}
}

// clientInbox is a new client subscribed to the test's topic in a group of
// its own, and what that subscription receives.
func (e *env) clientInbox() (*sdk.Client, <-chan *sdk.Message) {
	e.t.Helper()
	c := e.client()
	got := make(chan *sdk.Message, 4)
	if _, err := c.Subscribe(e.ctx, e.topic, uniqueName("g"), func(_ context.Context, m *sdk.Message) error {
		got <- m
		return nil
	}); err != nil {
		e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
	}
	return c, got
}

// stillCarries publishes a message to the test's topic and waits for it on
// got: after odd input (what happened, after), the transport must still
// carry the next message.
func (e *env) stillCarries(c *sdk.Client, got <-chan *sdk.Message, after string) {
	e.t.Helper()
	m := &sdk.Message{Payload: []byte("after " + after)}
	if err := e.publishBounded(c, e.topic, m); err != nil {
		e.t.Fatalf("guarantee broken: after %s, the next publish must work, got %v", after, err)
	}
	if r := e.awaitClient(got, "the message published after "+after); string(r.Payload) != string(m.Payload) {
		e.t.Fatalf("guarantee broken: after %s the next message must be delivered: got %q, want %q", after, r.Payload, m.Payload)
	}
}

// oddTopic subscribes to and publishes to topic: each call returns by its
// deadline; an error is short; when both work the message arrives.
func (e *env) oddTopic(c *sdk.Client, topic string) {
	e.t.Helper()
	got, subErr := e.subscribeBounded(c, "Subscribe to "+sdk.QuoteName(topic), topic, uniqueName("g"))
	e.checkShortError(subErr, "Subscribe to "+sdk.QuoteName(topic))
	m := &sdk.Message{Payload: []byte("to an odd topic")}
	pubErr := e.publishBounded(c, topic, m)
	e.checkShortError(pubErr, "Publish to "+sdk.QuoteName(topic))
	e.t.Logf("topic %s: Subscribe: %s; Publish: %s", sdk.QuoteName(topic), outcome(subErr), outcome(pubErr))
	if subErr == nil && pubErr == nil {
		e.awaitClient(got, "a message published to the topic "+sdk.QuoteName(topic)+", which the broker took,")
	}
}

// oddGroup subscribes in a group named group, on a topic of its own (a
// driver that takes one group per topic refuses a second one before it
// looks at the name); when the broker takes the group, it gets what is
// published.
func (e *env) oddGroup(c *sdk.Client, group string) {
	e.t.Helper()
	what := "Subscribe in group " + sdk.QuoteName(group)
	topic := uniqueName("t")
	got, err := e.subscribeBounded(c, what, topic, group)
	e.checkShortError(err, what)
	e.t.Logf("group %s: Subscribe: %s", sdk.QuoteName(group), outcome(err))
	if err != nil {
		return
	}
	if err := e.publishBounded(c, topic, &sdk.Message{Payload: []byte("to a long group")}); err != nil {
		e.t.Fatalf("guarantee broken: the group %s was taken, so publishing to its topic must work, got %v", sdk.QuoteName(group), err)
	}
	e.awaitClient(got, "a message for the group "+sdk.QuoteName(group)+", which the broker took,")
}

// subscribeBounded subscribes c to topic in group by the harness deadline
// (what names the call in a failure) and returns the first message the
// subscription gets; the subscription closes when the test ends.
func (e *env) subscribeBounded(c *sdk.Client, what, topic, group string) (<-chan *sdk.Message, error) {
	e.t.Helper()
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
	return got, err
}

func (e *env) publishBounded(c *sdk.Client, topic string, m *sdk.Message) error {
	return e.bounded("Publish to "+sdk.QuoteName(topic), func(ctx context.Context) error {
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
		e.t.Fatalf("guarantee broken: an error about a long name must name it abbreviated (sdk.QuoteName): %s failed with a %d-byte error (runs of x shortened here): %s",
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

// oddMetadata are metadata sets, each sent as one message, that brokers
// and their clients tend to change: keys differing only in case (HTTP-like
// headers fold them), an empty key, NUL and line breaks in keys and values,
// separators, a key past the 255 bytes of AMQP short strings, names the
// brokers' own headers and attributes use, and spaces around keys.
var oddMetadata = []map[string]string{
	{"Case": "upper", "case": "lower", "CASE": "all"},
	{"": "an empty key"},
	{"a\x00b": "a NUL in the key", "nul-value": "a\x00b"},
	{"a\r\nb": "a line break in the key", "crlf-value": "a\r\nb: c"},
	{"colon:key": "v", "eq=key": "v", "semi;key": "v", "a.b": "dots", "tab\tkey": "v", " padded ": " v "},
	{strings.Repeat("k", 1000): "a 1000-byte key"},
	{"Content-Type": "text/x-odd", "content-type": "lower"},
	{"x-death": "not a death", "x-delay": "1", "expiration": "1", "type": "t", "app_id": "a", "reply_to": "r"},
	{"nats-msg-id": "x", "Nats-Expected-Stream": "y", "Nats-TTL": "1s"},
	{"MessageGroupId": "g", "AWSTraceHeader": "t", "aws.x": "y", "amazon-key": "v", "AWS.key": "v"},
	{"_watermill_message_uuid ": "a trailing space", "ce_id": "ce underscore", "cloudEvents:x": "v"},
}

// testOddMetadata: each set of oddMetadata round-trips exactly (every
// key, with its value), or its publish is refused with an error that
// names one of its keys; either way the transport still carries the
// next message.
func testOddMetadata(e *env) {
	c, got := e.clientInbox()
	for i, md := range oddMetadata {
		what := fmt.Sprintf("metadata set %d (keys %s)", i, quotedKeys(md))
		m := &sdk.Message{Payload: []byte(fmt.Sprintf("odd metadata %d", i)), Metadata: maps.Clone(md)}
		err := e.publishBounded(c, e.topic, m)
		e.checkShortError(err, "Publish with "+what)
		if err != nil {
			if !namesAKey(err, md) {
				e.t.Fatalf("guarantee broken: a publish refused for its metadata must name the key: %s was refused with %v", what, err)
			}
			e.t.Logf("%s: refused: %v", what, err)
		} else {
			r := e.awaitClient(got, "a message with "+what)
			for k, v := range md {
				if rv, ok := r.Metadata[k]; !ok || rv != v {
					e.t.Fatalf("guarantee broken: metadata must arrive exactly as sent or be refused: %s arrived with %s = %q (present: %v), sent %q",
						what, sdk.QuoteName(k), rv, ok, v)
				}
			}
		}
		e.stillCarries(c, got, "a publish with "+what)
	}
}

func quotedKeys(md map[string]string) string {
	keys := slices.Sorted(maps.Keys(md))
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = sdk.QuoteName(k)
	}
	return strings.Join(q, ", ")
}

// namesAKey reports whether err names one of md's keys, quoted whole or
// abbreviated.
func namesAKey(err error, md map[string]string) bool {
	for k := range md {
		if strings.Contains(err.Error(), sdk.QuoteName(k)) || strings.Contains(err.Error(), strconv.Quote(k)) {
			return true
		}
	}
	return false
}

// oddIDs are message ids (also sent as the correlation id) a broker's
// headers or properties may change: a line break, NUL, spaces around it,
// separators, non-ASCII letters, a value that looks like an RFC 2047
// encoded word, and 1000 bytes (past an AMQP property).
var oddIDs = []string{
	"a\nb", "a\x00b", " spaced ", "a,b;c=d:e", "ключ-🚀", "=?UTF-8?B?YQ==?=", strings.Repeat("i", 1000),
}

// testOddIDs: each of oddIDs arrives exactly as the message's id and
// correlation id, or its publish is refused with a short error; either way
// the next message is carried.
func testOddIDs(e *env) {
	c, got := e.clientInbox()
	for _, id := range oddIDs {
		what := "the id " + sdk.QuoteName(id)
		err := e.publishBounded(c, e.topic, &sdk.Message{ID: id, CorrelationID: id, Payload: []byte("odd id")})
		e.checkShortError(err, "Publish with "+what)
		if err != nil {
			e.t.Logf("%s: refused: %v", what, err)
		} else if r := e.awaitClient(got, "a message with "+what); r.ID != id || r.CorrelationID != id {
			e.t.Fatalf("guarantee broken: a message id must arrive exactly as sent or be refused: sent %s, received id %s and correlation id %s",
				sdk.QuoteName(id), sdk.QuoteName(r.ID), sdk.QuoteName(r.CorrelationID))
		}
		e.stillCarries(c, got, "a publish with "+what)
	}
}
