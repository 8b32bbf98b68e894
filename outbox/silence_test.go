package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/internal/silence"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// publishing signals the first Publish that starts after armed is set.
type publishing struct {
	inner   outbox.Publisher
	mu      sync.Mutex
	started chan struct{} // nil while not armed
}

func (p *publishing) arm() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = make(chan struct{})
	return p.started
}

func (p *publishing) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	p.mu.Lock()
	if p.started != nil {
		close(p.started)
		p.started = nil
	}
	p.mu.Unlock()
	return p.inner.Publish(ctx, topic, msgs...)
}

// A relay whose broker goes silent, for longer than its lease, loses
// nothing: what was committed during the silence goes out once the broker
// answers, and the outbox empties. A relay stopped while it waits on the
// silent broker returns within its DrainTimeout, and what it held goes out
// with the next relay. The broker is this machine's Redis behind a proxy
// that stops carrying bytes; the consumer reads it directly.
func TestRelayThroughASilentBrokerLosesNothing(t *testing.T) {
	url := testenv.Redis(t)
	eachDatabase(t, func(t *testing.T, e *env) {
		const lease, drain = 2 * time.Second, 2 * time.Second
		s := silence.New(t)
		ctx := context.Background()
		direct, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: url}, sdk.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = direct.Close(context.Background()) })
		// Through the proxy: a client whose publishes give up after a second
		// (the relay then tries again, and its lease runs out meanwhile), and
		// one with the default publish_timeout of 30s, which only the
		// relay's DrainTimeout cuts short.
		proxied := func(options map[string]string) *sdk.Client {
			c, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: testenv.ProxiedURL(url, func(addr string) string { return s.Proxy(t, addr) }), Options: options}, sdk.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				s.Resume()
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = c.Close(cctx)
			})
			return c
		}
		quick, patient := proxied(map[string]string{"publish_timeout": "1s"}), proxied(nil)

		topic := randomName("ct-outbox-silent-")
		var mu sync.Mutex
		seen := map[string]bool{}
		if _, err := direct.Subscribe(ctx, topic, "billing", func(_ context.Context, m *sdk.Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[string(m.Payload)] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		added := 0
		add := func(n int) {
			tx, err := e.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if err := e.store.Add(ctx, tx, topic, sdk.NewMessage([]byte(fmt.Sprint("m-", added)))); err != nil {
					t.Fatal(err)
				}
				added++
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		allSeen := func(what string) {
			t.Helper()
			testenv.Eventually(t, 60*time.Second, what, func() bool {
				mu.Lock()
				defer mu.Unlock()
				for i := range added {
					if !seen[fmt.Sprint("m-", i)] {
						return false
					}
				}
				return true
			})
			testenv.Eventually(t, 10*time.Second, "the outbox to empty once "+what, func() bool {
				lag, err := e.store.Lag(context.Background())
				return err == nil && lag.Unsent == 0
			})
		}
		run := func(pub outbox.Publisher) (stop func() error) {
			r := e.relay(outbox.RelayConfig{Publisher: pub, Lease: lease, DrainTimeout: drain, MaxPoll: 100 * time.Millisecond})
			rctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			stopped := false
			stop = func() error {
				if stopped {
					return nil
				}
				stopped = true
				cancel()
				start := time.Now()
				select {
				case err := <-done:
					if took := time.Since(start); took > drain+5*time.Second {
						return fmt.Errorf("Run returned %v after its context ended, with a DrainTimeout of %v", took.Round(time.Millisecond), drain)
					}
					if !errors.Is(err, context.Canceled) {
						return fmt.Errorf("Run ended with %v, want context.Canceled", err)
					}
					return nil
				case <-time.After(drain + 30*time.Second):
					return fmt.Errorf("Run did not return within %v of its context ending, with a DrainTimeout of %v", drain+30*time.Second, drain)
				}
			}
			t.Cleanup(func() { _ = stop() })
			return stop
		}

		pub := &publishing{inner: quick}
		stop := run(pub)
		add(20)
		allSeen("the first messages are relayed")

		// A silence several leases long, with commits during it: the relay
		// tries again and again.
		s.Silence()
		silenced := time.Now()
		for time.Since(silenced) < 3*lease {
			started := pub.arm()
			add(10)
			testenv.Await(t, started, "the relay to publish again during the silence")
		}
		s.Resume()
		allSeen("the broker answers again")
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		// A relay stopped while it waits on the silent broker.
		pub = &publishing{inner: patient}
		stop = run(pub)
		s.Silence()
		started := pub.arm()
		add(10)
		testenv.Await(t, started, "the relay to publish to the silent broker")
		if err := stop(); err != nil {
			t.Fatalf("a relay stopped while its broker is silent: %v", err)
		}
		s.Resume()
		stop = run(&publishing{inner: patient})
		allSeen("a new relay runs after the broker answers")
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}
