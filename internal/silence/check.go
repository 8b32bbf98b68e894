package silence

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgkit/msgkit/sdk"
)

// For is how long the broker stays silent in Check: longer than the
// deadlines it checks, shorter than the heartbeats and keep-alives after
// which a client gives a connection up, so that what is checked is the
// wait, not a reconnect.
const For = 4 * time.Second

// callDeadline bounds each call Check makes while the broker is silent;
// slack is how much later than that the call may return.
const (
	callDeadline = time.Second
	slack        = time.Second
)

// recovery bounds the publishing and consuming after the broker answers
// again.
const recovery = 30 * time.Second

// Check checks a client against a broker that stops answering in the
// middle of a session and then answers again. open opens a Client on a
// broker that s silences (reached through s.Proxy, or listening with
// s.Listen). While the broker is silent, every call returns by its
// deadline: Publish (to the topic in use and to a new one), Request where
// the driver declares RequestReply (the first one included, which opens
// the client's reply topic), EnsureGroup and RemoveGroup with an error
// wrapping context.DeadlineExceeded; Subscribe and a Subscription's Close
// with whatever they say. A Publish, EnsureGroup, RemoveGroup or Request
// whose context is cancelled long before its deadline returns at the
// cancellation, with an error wrapping context.Canceled. Once it answers
// again, the client publishes, its subscription consumes and its requests
// get their replies with no call from the application, and Close returns
// nil. A failure says "guarantee broken" and which of these did not hold.
func Check(t testing.TB, open func(ctx context.Context, s *Switch) (*sdk.Client, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), recovery)
	defer cancel()
	s, c, closeClient := start(t, ctx, open)
	topic, group := "ct-silent-"+uuid.NewString()[:8], "g"
	got := make(chan string, 16)
	if _, err := c.Subscribe(ctx, topic, group, func(_ context.Context, m *sdk.Message) error {
		select {
		case got <- string(m.Payload):
		default: // only what the check waits for matters
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	other, err := c.Subscribe(ctx, "ct-silent-other-"+uuid.NewString()[:8], group, func(context.Context, *sdk.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Requests go to a responder on this client. None is made before the
	// silence, so the first opens the client's reply topic.
	requests := c.Capabilities().RequestReply
	rpc := "ct-silent-rpc-" + uuid.NewString()[:8]
	if requests {
		answer(t, ctx, c, rpc, group)
	}
	if err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte("before")}); err != nil {
		t.Fatalf("publish before the broker went silent: %v", err)
	}
	waitFor(t, got, "before")

	s.Silence()
	silenced := time.Now()
	publish := func(to string, d time.Duration) {
		t.Helper()
		timesOut(t, "Publish to "+to, d, func(ctx context.Context) error {
			return c.Publish(ctx, to, &sdk.Message{Payload: []byte("during")})
		})
	}
	// A publish with a later deadline to a topic never used before, which
	// waits for its queue, stream or exchange to be looked up or declared:
	// the publishes below, with earlier deadlines, must not wait for it.
	slow := make(chan struct{})
	go func() {
		defer close(slow)
		publish("ct-silent-slow-"+uuid.NewString()[:8], 3*callDeadline)
	}()
	// Likewise a request with a later deadline, which opens the reply
	// topic: a request with an earlier one must not wait for it.
	request := func(d time.Duration) {
		t.Helper()
		timesOut(t, "Request to "+rpc, d, func(ctx context.Context) error {
			_, err := c.Request(ctx, rpc, &sdk.Message{Payload: []byte("during")})
			return err
		})
	}
	slowRequest := make(chan struct{})
	go func() {
		defer close(slowRequest)
		if requests {
			request(3 * callDeadline)
		}
	}()
	time.Sleep(100 * time.Millisecond) // lets them start first; nothing signals that they have
	if requests {
		request(callDeadline)
	}
	for _, to := range []string{"ct-silent-new-" + uuid.NewString()[:8], topic} {
		// Another topic never used before, and the topic in use.
		publish(to, callDeadline)
	}
	// Calls whose context is cancelled long before their deadline, as a
	// service shutting down cancels: they end at the cancellation.
	cancelled(t, "Publish to "+topic, func(ctx context.Context) error {
		return c.Publish(ctx, topic, &sdk.Message{Payload: []byte("during")})
	})
	cancelled(t, "EnsureGroup", func(ctx context.Context) error {
		return c.EnsureGroup(ctx, "ct-silent-ensure-"+uuid.NewString()[:8], group)
	})
	if c.Capabilities().RemovesGroups {
		cancelled(t, "RemoveGroup", func(ctx context.Context) error {
			return c.RemoveGroup(ctx, "ct-silent-ensure-"+uuid.NewString()[:8], group)
		})
	}
	if requests {
		cancelled(t, "Request to "+rpc, func(ctx context.Context) error {
			_, err := c.Request(ctx, rpc, &sdk.Message{Payload: []byte("during")})
			return err
		})
	}
	err = within(t, "Subscribe", callDeadline, func(ctx context.Context) error {
		_, err := c.Subscribe(ctx, "ct-silent-sub-"+uuid.NewString()[:8], group, func(context.Context, *sdk.Message) error { return nil })
		return err
	})
	t.Logf("Subscribe while the broker is silent: %v", err)
	// The calls that manage a group without consuming: RemoveGroup on the
	// group in use stops at its deadline, whatever it got done.
	timesOut(t, "EnsureGroup", callDeadline, func(ctx context.Context) error {
		return c.EnsureGroup(ctx, "ct-silent-ensure-"+uuid.NewString()[:8], group)
	})
	if c.Capabilities().RemovesGroups {
		timesOut(t, "RemoveGroup", callDeadline, func(ctx context.Context) error {
			return c.RemoveGroup(ctx, "ct-silent-ensure-"+uuid.NewString()[:8], group)
		})
	}
	err = within(t, "Subscription.Close", callDeadline, other.Close)
	t.Logf("Subscription.Close while the broker is silent: %v", err)
	<-slow
	<-slowRequest
	time.Sleep(time.Until(silenced.Add(For))) // the silence itself: there is nothing to wait for
	s.Resume()

	var published []string
	deadline := time.Now().Add(recovery)
	for i := 0; len(published) < 3; i++ {
		p := fmt.Sprintf("after-%d", i)
		pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Publish(pctx, topic, &sdk.Message{Payload: []byte(p)})
		cancel()
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("guarantee broken: Publish must work again once the broker answers; still failing after %v: %v", recovery, err)
			}
			continue
		}
		published = append(published, p)
	}
	waitFor(t, got, published...)
	if requests {
		requestAgain(t, c, rpc, "silent", deadline)
	}
	closeClient()
}

// answer makes c answer the requests sent to rpc with their own payload.
func answer(t testing.TB, ctx context.Context, c *sdk.Client, rpc, group string) {
	t.Helper()
	if _, err := c.Respond(ctx, rpc, group, func(_ context.Context, req *sdk.Message) (*sdk.Message, error) {
		return &sdk.Message{Payload: req.Payload}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// requestAgain makes requests to rpc, answered by answer, until one gets its
// own reply, and fails the test if none has by deadline: requests must
// work again after the fault ("silent", "cut off") has ended.
func requestAgain(t testing.TB, c *sdk.Client, rpc, fault string, deadline time.Time) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := c.Request(ctx, rpc, &sdk.Message{Payload: []byte("after")})
		cancel()
		if err == nil {
			if string(reply.Payload) != "after" {
				t.Fatalf("guarantee broken: the reply to a request once the broker is no longer %s must be its own, got %q", fault, reply.Payload)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("guarantee broken: Request must work again once the broker is no longer %s; still failing: %v", fault, err)
		}
		t.Logf("Request once the broker was no longer %s: %v", fault, err)
	}
}

// start opens the client the check runs on. The client is closed when the
// test ends, the broker made to answer first, unless the check has closed
// it with closeClient, which fails the test unless Close returns nil.
func start(t testing.TB, ctx context.Context, open func(ctx context.Context, s *Switch) (*sdk.Client, error)) (s *Switch, c *sdk.Client, closeClient func()) {
	t.Helper()
	s = New(t)
	c, err := open(ctx, s)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Resume()
			_ = c.Close(context.Background())
		}
	})
	return s, c, func() {
		t.Helper()
		closed = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Fatalf("guarantee broken: Close once the broker answers again must return nil, got %v", err)
		}
	}
}

// within runs call with a context whose deadline is d away, and fails the
// test if it returns more than slack after that deadline.
func within(t testing.TB, what string, d time.Duration, call func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	if took := time.Since(start); took > d+slack {
		t.Errorf("guarantee broken: %s must return by its deadline while the broker is silent: it took %v with a %v deadline",
			what, took.Round(time.Millisecond), d)
	}
	return err
}

// timesOut runs call within d, as within does, and fails the test unless
// it fails with an error wrapping context.DeadlineExceeded: while the
// broker is silent nothing can have confirmed or answered it.
func timesOut(t testing.TB, what string, d time.Duration, call func(ctx context.Context) error) {
	t.Helper()
	err := within(t, what, d, call)
	switch {
	case err == nil:
		t.Errorf("guarantee broken: %s returned nil while the broker was silent: nothing confirmed or answered it", what)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("guarantee broken: %s while the broker is silent must fail with an error wrapping context.DeadlineExceeded, got %v", what, err)
	default:
		t.Logf("%s while the broker is silent: %v", what, err)
	}
}

// cancelled runs call with a context whose deadline is far off and which
// is cancelled after callDeadline, and fails the test unless call returns
// within slack of the cancellation with an error wrapping
// context.Canceled.
func cancelled(t testing.TB, what string, call func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), recovery)
	defer cancel()
	time.AfterFunc(callDeadline, cancel)
	start := time.Now()
	err := call(ctx)
	took := time.Since(start)
	switch {
	case took > callDeadline+slack:
		t.Errorf("guarantee broken: %s must return when its context is cancelled while the broker is silent: it took %v, cancelled after %v",
			what, took.Round(time.Millisecond), callDeadline)
	case !errors.Is(err, context.Canceled):
		t.Errorf("guarantee broken: %s cancelled while the broker is silent must fail with an error wrapping context.Canceled, got %v", what, err)
	default:
		t.Logf("%s cancelled while the broker is silent: %v", what, err)
	}
}

// waitFor waits until got has delivered each of want, in any order.
func waitFor(t testing.TB, got <-chan string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	timeout := time.After(recovery)
	for _, p := range want {
		for !seen[p] {
			select {
			case m := <-got:
				seen[m] = true
			case <-timeout:
				t.Fatalf("guarantee broken: the subscription must consume again once the broker answers: it had %v of %v after %v", seen, want, recovery)
			}
		}
	}
}
