package conformance

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// The group and ordering guarantees through sdk.Client, which services use:
// one subscription runs several handler goroutines of the engine, which a
// Watermill subscription (one member, one message at a time) does not
// reach.

// handled is one handler call: which subscription made it, and the message.
type handled struct {
	member string
	id     string
	key    string
	seq    int
}

// clientMembers subscribes members subscriptions in one group, each with
// concurrency handler goroutines, that report every message to the
// returned channel. Each handler call takes work; one that starts while
// another call holds a message with the same ordering key is an error.
func (e *env) clientMembers(c *sdk.Client, members, concurrency int, work time.Duration) <-chan handled {
	e.t.Helper()
	group := uniqueName("g")
	out := make(chan handled, 4*e.h.Messages)
	var mu sync.Mutex
	busy := map[string]string{} // ordering key -> the message holding it
	for i := 0; i < members; i++ {
		name := "member " + strconv.Itoa(i+1)
		_, err := c.Subscribe(e.ctx, e.topic, group, func(_ context.Context, m *sdk.Message) error {
			if k := m.OrderingKey; k != "" {
				mu.Lock()
				if other, ok := busy[k]; ok {
					e.t.Errorf("guarantee broken: messages with one ordering key must be handled one at a time: %s started while %s, with key %q, was being handled", m.ID, other, k)
				}
				busy[k] = m.ID
				mu.Unlock()
				defer func() { mu.Lock(); delete(busy, k); mu.Unlock() }()
			}
			time.Sleep(work) // the handler's work, during which another call could overlap
			seq, _ := strconv.Atoi(m.Get("seq"))
			out <- handled{member: name, id: m.ID, key: m.OrderingKey, seq: seq}
			return nil
		}, sdk.WithConcurrency(concurrency))
		if err != nil {
			e.t.Fatalf("setup: Client.Subscribe failed: %v", err)
		}
	}
	return out
}

// gather takes calls from ch until want distinct message ids arrived, then
// watches the quiet period for more. It fails the test on a timeout.
func (e *env) gather(ch <-chan handled, want int, guarantee string) []handled {
	e.t.Helper()
	var calls []handled
	ids := map[string]bool{}
	deadline := time.After(e.h.Timeout)
	for len(ids) < want {
		select {
		case h := <-ch:
			calls = append(calls, h)
			ids[h.id] = true
		case <-deadline:
			e.t.Fatalf("guarantee broken: %s: %d of %d messages reached a handler within %v", guarantee, len(ids), want, e.h.Timeout)
		}
	}
	quiet := time.After(e.h.QuietPeriod)
	for {
		select {
		case h := <-ch:
			calls = append(calls, h)
		case <-quiet:
			return calls
		}
	}
}

func testClientCompetingSubscriptions(e *env) {
	c := e.client()
	calls := e.clientMembers(c, 2, 4, 0)
	sent := map[string]bool{}
	for i := 0; i < 100; i++ {
		m := sdk.NewMessage([]byte(fmt.Sprint("compete-", i)))
		if err := c.Publish(e.ctx, e.topic, m); err != nil {
			e.t.Fatalf("Client.Publish failed: %v", err)
		}
		sent[m.ID] = true
	}
	const guarantee = "subscriptions of one group through Client, with concurrent handlers, must share the messages, each handled once"
	count := map[string]int{}
	for _, h := range e.gather(calls, len(sent), guarantee) {
		if !sent[h.id] {
			e.t.Errorf("guarantee broken: %s: message %s was never sent to this topic", guarantee, h.id)
		}
		if count[h.id]++; count[h.id] == 2 {
			e.t.Errorf("guarantee broken: %s: message %s handled more than once", guarantee, h.id)
		}
	}
}

func testClientOrderingPerKey(e *env) {
	c := e.client()
	calls := e.clientMembers(c, 2, 4, time.Millisecond)
	keys := []string{"alpha", "beta", "gamma"}
	const perKey = 30
	for i := 0; i < perKey; i++ {
		for _, k := range keys { // one at a time: the order of publish calls is the order to keep
			m := sdk.NewMessage([]byte(k + "-" + strconv.Itoa(i)))
			m.OrderingKey = k
			m.Set("seq", strconv.Itoa(i))
			if err := c.Publish(e.ctx, e.topic, m); err != nil {
				e.t.Fatalf("Client.Publish failed: %v", err)
			}
		}
	}
	const guarantee = "messages with one ordering key must reach Client handlers in publish order, one at a time, even with competing subscriptions and concurrent handlers"
	last := map[string]int{}
	for _, h := range e.gather(calls, perKey*len(keys), guarantee) {
		if prev, ok := last[h.key]; ok && h.seq <= prev {
			e.t.Errorf("guarantee broken: %s: key %q: seq %d handled (by %s) after seq %d", guarantee, h.key, h.seq, h.member, prev)
		}
		last[h.key] = h.seq
	}
}
