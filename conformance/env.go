package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// env is one test's view of the broker: a transport, a unique topic, and
// helpers whose failures say which guarantee broke.
type env struct {
	t     *boundedT
	h     Harness
	tr    driver.Transport
	pub   message.Publisher // the Watermill publisher every driver gets from sdk
	caps  sdk.Capabilities
	topic string
	ctx   context.Context
}

func newEnv(t *testing.T, h Harness) *env {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: &boundedT{T: t, max: h.MaxFailureBytes}, h: h, ctx: ctx, topic: uniqueName("t")}
	e.tr = e.open()
	e.caps = e.tr.Capabilities()
	e.pub = sdk.NewWatermillPublisher(e.tr)
	return e
}

// open opens a transport that is closed when the test ends.
func (e *env) open() driver.Transport {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	tr, err := e.h.Open(ctx, e.t.T)
	if err != nil {
		e.t.Fatalf("setup: Harness.Open failed: %v", err)
	}
	e.t.Cleanup(func() {
		// Bounded, so that a Close that never returns fails this test,
		// naming it, instead of hanging the suite.
		done := make(chan error, 1)
		go func() { done <- tr.Close() }()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("cleanup: closing the transport failed: %v", err)
			}
		case <-time.After(e.h.Timeout):
			e.t.Errorf("guarantee broken: Transport.Close must return: it had not after %v", e.h.Timeout)
		}
	})
	return tr
}

// uniqueName returns a name made of letters, digits and hyphens (valid for
// every broker's topic and group names), unique across runs.
func uniqueName(prefix string) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "ct-" + prefix + "-" + hex.EncodeToString(b)
}

// subscriber returns a subscriber in group that is closed when the test ends.
func (e *env) subscriber(group string) message.Subscriber {
	e.t.Helper()
	sub := sdk.NewWatermillSubscriber(e.tr, group, nil)
	e.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// subscribe starts consuming e.topic in group.
func (e *env) subscribe(group string) (<-chan *message.Message, message.Subscriber) {
	e.t.Helper()
	sub := e.subscriber(group)
	ch, err := sub.Subscribe(e.ctx, e.topic)
	if err != nil {
		e.t.Fatalf("setup: Subscribe(%q) in group %q failed: %v", e.topic, group, err)
	}
	return ch, sub
}

func newMsg(payload string) *message.Message {
	return message.NewMessage(uuid.NewString(), []byte(payload))
}

func (e *env) publish(msgs ...*message.Message) {
	e.t.Helper()
	if err := e.pub.Publish(e.topic, msgs...); err != nil {
		e.t.Fatalf("Publish to %q failed: %v", e.topic, err)
	}
}

// receive returns the next message from ch, failing the test with the
// guarantee that broke when none arrives in time.
func (e *env) receive(ch <-chan *message.Message, guarantee string) *message.Message {
	e.t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			e.t.Fatalf("guarantee broken: %s: the subscription channel closed while a message was expected", guarantee)
		}
		return m
	case <-time.After(e.h.Timeout):
		e.t.Fatalf("guarantee broken: %s: no message arrived within %v", guarantee, e.h.Timeout)
	}
	return nil
}

// expectNone fails if a message arrives on ch within the quiet period.
func (e *env) expectNone(ch <-chan *message.Message, guarantee string) {
	e.t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			m.Ack()
			e.t.Fatalf("guarantee broken: %s: unexpected delivery of message %s (payload %q)", guarantee, m.UUID, preview(m.Payload))
		}
	case <-time.After(e.h.QuietPeriod):
	}
}

// collect receives from the channels until want distinct message ids have
// arrived, calling each (when not nil) and then acking every message, then
// keeps listening for the quiet period. It returns how often each id arrived.
func (e *env) collect(want int, guarantee string, each func(*message.Message), chans ...<-chan *message.Message) map[string]int {
	e.t.Helper()
	seen := map[string]int{}
	merged := make(chan *message.Message)
	stop := make(chan struct{})
	defer close(stop)
	for _, ch := range chans {
		go func() {
			for {
				select {
				case m, ok := <-ch:
					if !ok {
						return
					}
					select {
					case merged <- m:
					case <-stop:
						m.Nack()
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	deadline := time.After(e.h.Timeout)
	for len(seen) < want {
		select {
		case m := <-merged:
			seen[m.UUID]++
			if each != nil {
				each(m)
			}
			m.Ack()
		case <-deadline:
			e.t.Fatalf("guarantee broken: %s: %d of %d messages arrived within %v", guarantee, len(seen), want, e.h.Timeout)
		}
	}
	quiet := time.After(e.h.QuietPeriod)
	for {
		select {
		case m := <-merged:
			seen[m.UUID]++
			m.Ack()
		case <-quiet:
			return seen
		}
	}
}

// ack acknowledges m, failing if the subscriber does not accept it.
func ack(t testing.TB, m *message.Message) {
	t.Helper()
	if !m.Ack() {
		t.Fatalf("Ack of message %s returned false: it was already nacked", m.UUID)
	}
}

func preview(b []byte) string {
	const max = 40
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func describeDiff(want, got map[string]string) string {
	var b strings.Builder
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			fmt.Fprintf(&b, "\n  missing %q", k)
		case g != v:
			fmt.Fprintf(&b, "\n  %q: want %q, got %q", k, v, g)
		}
	}
	return b.String()
}

// boundedT is the test of a guarantee, with its failure messages cut to max
// bytes (their start and end kept), so that a failure that prints a large
// payload or a long list does not bury the others.
type boundedT struct {
	*testing.T
	max int
}

func (b *boundedT) cut(s string) string {
	if len(s) <= b.max {
		return s
	}
	keep := b.max / 2
	return fmt.Sprintf("%s\n... (%d bytes cut) ...\n%s", s[:keep], len(s)-2*keep, s[len(s)-keep:])
}

// Fatalf fails the test with a bounded message.
func (b *boundedT) Fatalf(format string, args ...any) {
	b.T.Helper()
	b.T.Fatal(b.cut(fmt.Sprintf(format, args...)))
}

// Errorf marks the test failed with a bounded message.
func (b *boundedT) Errorf(format string, args ...any) {
	b.T.Helper()
	b.T.Error(b.cut(fmt.Sprintf(format, args...)))
}

// Fatal fails the test with a bounded message.
func (b *boundedT) Fatal(args ...any) {
	b.T.Helper()
	b.T.Fatal(b.cut(fmt.Sprint(args...)))
}

// Error marks the test failed with a bounded message.
func (b *boundedT) Error(args ...any) {
	b.T.Helper()
	b.T.Error(b.cut(fmt.Sprint(args...)))
}
