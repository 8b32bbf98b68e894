package silence

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/sdk"
)

// Outage is how long the broker stays silent in CheckOutage: longer than
// a client takes to give a connection up whose heartbeats go unanswered
// (RabbitMQ's driver, heartbeat 10 s) and than a broker takes to give up a
// client's (a Kafka group member's session, 10 s), so that both sides may
// have dropped the session by the time it answers again.
const Outage = 25 * time.Second

// CheckOutage checks a client against a broker that is silent for d.
// Messages are in the handlers' hands, taken but not acknowledged, when
// the silence starts, and the application keeps publishing through it.
// While the broker is silent, each Publish returns by its deadline. Once
// it answers again, the client publishes and its subscription consumes
// with no call from the application, every message whose Publish returned
// nil is handled at least once, Request (made once before the silence, so
// that the client's reply topic exists) gets its reply where the driver
// declares RequestReply, and Close returns nil. A failure says "guarantee
// broken" and which of these did not hold.
func CheckOutage(t testing.TB, d time.Duration, open func(ctx context.Context, s *Switch) (*sdk.Client, error)) {
	t.Helper()
	loseNothing(t, "silent", open, func(s *Switch, publish func(string)) {
		s.Silence()
		defer s.Resume()
		silenced := time.Now()
		for i := 0; time.Since(silenced) < d; i++ {
			publish(fmt.Sprintf("during-%d", i))
			time.Sleep(time.Until(silenced.Add(time.Duration(i+1) * 2 * callDeadline))) // paces the publishes; nothing to wait for
		}
	})
}

// CheckCuts is CheckOutage with the broker's connections cut, as a
// restart or a reset network does, five times a second apart, instead of
// a silence: every Publish returns by its deadline, every message whose
// Publish returned nil is handled at least once, and requests get their
// replies again.
func CheckCuts(t testing.TB, open func(ctx context.Context, s *Switch) (*sdk.Client, error)) {
	t.Helper()
	loseNothing(t, "cut off", open, func(s *Switch, publish func(string)) {
		for i := range 5 {
			s.Cut()
			cut := time.Now()
			for j := 0; time.Since(cut) < callDeadline; j++ {
				publish(fmt.Sprintf("cut-%d-%d", i, j))
				time.Sleep(time.Until(cut.Add(time.Duration(j+1) * callDeadline / 20))) // paces the publishes; nothing to wait for
			}
		}
	})
}

// loseNothing runs run, the fault (the broker is then fault: "silent",
// "cut off"), on a client whose subscription is handling messages; run
// publishes with publish, which checks that each Publish returns by
// callDeadline. Then it checks that the client publishes again, that
// every message whose Publish returned nil is handled, and that requests
// get their replies.
func loseNothing(t testing.TB, fault string, open func(ctx context.Context, s *Switch) (*sdk.Client, error), run func(s *Switch, publish func(string))) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), recovery)
	defer cancel()
	s, c, closeClient := start(t, ctx, open)
	topic, group := "ct-outage-"+uuid.NewString()[:8], "g"
	var mu sync.Mutex
	handled := map[string]bool{}
	changed := make(chan struct{}, 1)
	if _, err := c.Subscribe(ctx, topic, group, func(ctx context.Context, m *sdk.Message) error {
		// Slow enough that most of the messages published just before the
		// silence are still being handled, or waiting, when it starts.
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		handled[string(m.Payload)] = true
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
		return nil
	}, sdk.WithConcurrency(4)); err != nil {
		t.Fatal(err)
	}

	var published []string // every payload whose Publish returned nil
	publish := func(ctx context.Context, p string) error {
		err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte(p)})
		if err == nil {
			published = append(published, p)
		}
		return err
	}
	// A request before the fault opens the client's reply topic, which
	// must work again after it (a reply queue the broker deleted with the
	// connection, a subscription the server forgot).
	requests := c.Capabilities().RequestReply
	rpc := "ct-outage-rpc-" + uuid.NewString()[:8]
	if requests {
		answer(t, ctx, c, rpc, group)
		if _, err := c.Request(ctx, rpc, &sdk.Message{Payload: []byte("before")}); err != nil {
			t.Fatalf("request before the broker was %s: %v", fault, err)
		}
	}
	for i := range 100 {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := publish(pctx, fmt.Sprintf("before-%d", i))
		cancel()
		if err != nil {
			t.Fatalf("publish before the broker was %s: %v", fault, err)
		}
	}

	run(s, func(p string) {
		err := within(t, "Publish while the broker is "+fault, callDeadline, func(ctx context.Context) error { return publish(ctx, p) })
		if err == nil && fault == "silent" {
			t.Logf("Publish of %s returned nil while the broker was silent", p) // then it must be handled, below
		}
	})
	resumed := time.Now()

	for i := 0; i < 3; {
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := publish(pctx, fmt.Sprintf("after-%d", i))
		cancel()
		switch {
		case err == nil:
			i++
		case time.Since(resumed) > recovery:
			t.Fatalf("guarantee broken: Publish must work again once the broker is no longer %s; still failing %v after: %v", fault, recovery, err)
		}
	}
	timeout := time.After(recovery)
	for {
		mu.Lock()
		var missing []string
		for _, p := range published {
			if !handled[p] {
				missing = append(missing, p)
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("guarantee broken: every message whose Publish returned nil must be handled once the broker is no longer %s; %d of %d were not, %v after: %v",
				fault, len(missing), len(published), recovery, missing)
		}
	}
	t.Logf("all %d published messages handled %v after the broker was no longer %s", len(published), time.Since(resumed).Round(time.Millisecond), fault)
	if requests {
		requestAgain(t, c, rpc, fault, resumed.Add(2*recovery))
	}
	closeClient()
}

// CheckCloseWhileSilent checks that a Client closed while the broker is
// silent returns by its deadline (with an error saying what did not
// finish), and that once the broker answers again every goroutine the
// client started ends. ignore are more goroutines to leave out (the
// driver's process-wide ones).
func CheckCloseWhileSilent(t testing.TB, open func(ctx context.Context, s *Switch) (*sdk.Client, error), ignore ...goleak.Option) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), recovery)
	defer cancel()
	s := New(t)
	c, err := open(ctx, s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	topic, group := "ct-close-"+uuid.NewString()[:8], "g"
	got := make(chan string, 1)
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
		select {
		case got <- string(m.Payload):
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c.Capabilities().RequestReply { // opens the reply topic, with its own subscription
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, _ = c.Request(rctx, "ct-close-nobody-"+uuid.NewString()[:8], &sdk.Message{})
		cancel()
	}
	if err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte("before")}); err != nil {
		t.Fatalf("publish before the broker went silent: %v", err)
	}
	waitFor(t, got, "before")
	s.Silence()
	err = within(t, "Client.Close", callDeadline, c.Close)
	t.Logf("Client.Close while the broker is silent: %v", err)
	s.Resume()
	resumed := time.Now()
	opts := append([]goleak.Option{before,
		// The Switch's own, which live until the test ends.
		goleak.IgnoreAnyFunction("github.com/msgkit/msgkit/internal/silence.(*Switch).Proxy.func1"),
		goleak.IgnoreAnyFunction("github.com/msgkit/msgkit/internal/silence.(*Switch).copy"),
	}, ignore...)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return
		}
		if time.Since(resumed) > recovery {
			t.Fatalf("guarantee broken: a client closed while the broker was silent must leave no goroutine running once the broker answers; %v after:\n%v", recovery, err)
		}
		time.Sleep(200 * time.Millisecond) // goroutines ending give no signal
	}
}
