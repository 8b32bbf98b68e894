package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// responder starts r on its own client; requests come from another client,
// as between two services.
func (e *env) responder(r sdk.Responder) {
	e.t.Helper()
	if _, err := e.client().Respond(e.ctx, e.topic, uniqueName("responders"), r); err != nil {
		e.t.Fatalf("setup: Respond failed: %v", err)
	}
}

func testRequestReplyRoundTrip(e *env) {
	e.responder(func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		if string(req.Payload) == "fail" {
			return nil, errors.New("cannot do that")
		}
		reply := sdk.NewMessage([]byte(strings.ToUpper(string(req.Payload))))
		reply.EventType = "greeting.answered"
		return reply, nil
	})
	requester := e.client()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	req := sdk.NewMessage([]byte("hello"))
	reply, err := requester.Request(ctx, e.topic, req)
	if err != nil {
		e.t.Fatalf("guarantee broken: a request must get its responder's reply: %v", err)
	}
	if string(reply.Payload) != "HELLO" || reply.EventType != "greeting.answered" || reply.Get(sdk.KeyInReplyTo) != req.ID || reply.CausationID != req.ID {
		e.t.Fatalf("guarantee broken: the reply must be the responder's, correlated with the request: payload %q type %q in-reply-to %q causation %q (request %s)",
			reply.Payload, reply.EventType, reply.Get(sdk.KeyInReplyTo), reply.CausationID, req.ID)
	}
	_, err = requester.Request(ctx, e.topic, sdk.NewMessage([]byte("fail")))
	var remote *sdk.RemoteError
	if !errors.As(err, &remote) || remote.Message != "cannot do that" {
		e.t.Fatalf("guarantee broken: a responder's error must come back to the requester, got %v", err)
	}
}

func testRequestTimesOutAndLateReplyIsDiscarded(e *env) {
	gaveUp := make(chan struct{})
	e.responder(func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		if string(req.Payload) == "slow" {
			<-gaveUp // answer only after the requester stopped waiting
		}
		return sdk.NewMessage([]byte("re:" + string(req.Payload))), nil
	})
	requester := e.client()
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	_, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte("slow")))
	cancel()
	close(gaveUp)
	if !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("guarantee broken: a request without a reply must end with its context: got %v", err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	reply, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte("next")))
	if err != nil || string(reply.Payload) != "re:next" {
		e.t.Fatalf("guarantee broken: the late reply to a timed-out request must be discarded, not given to the next request: got %q, %v", replyPayload(reply), err)
	}
}

func replyPayload(m *sdk.Message) string {
	if m == nil {
		return ""
	}
	return string(m.Payload)
}

func testConcurrentRequestsAreCorrelated(e *env) {
	e.responder(func(ctx context.Context, req *sdk.Message) (*sdk.Message, error) {
		return sdk.NewMessage([]byte("re:" + string(req.Payload))), nil
	})
	requester := e.client()
	ctx, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	const n = 100
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("re:%d", i)
			reply, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte(fmt.Sprint(i))))
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case string(reply.Payload) != want:
				errs <- fmt.Errorf("request %d got reply %q, want %q", i, reply.Payload, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Errorf("guarantee broken: %d concurrent requests must each get their own reply: %v", n, err)
	}
}

// testExpiredRequestIsNotAnswered: a request whose caller gave up while no
// responder ran is not handled when one starts (the broker drops it, or
// the responder does, unread), and a live request after it is answered.
func testExpiredRequestIsNotAnswered(e *env) {
	group := uniqueName("g")
	requester := e.client()
	setup, cancelSetup := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancelSetup()
	if err := requester.EnsureGroup(setup, e.topic, group); err != nil {
		e.t.Fatalf("setup: EnsureGroup failed: %v", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	_, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte("stale")))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("setup: with no responder running the request should time out, got %v", err)
	}
	var mu sync.Mutex
	var handled []string
	if _, err := e.client().Respond(e.ctx, e.topic, group, func(_ context.Context, req *sdk.Message) (*sdk.Message, error) {
		mu.Lock()
		handled = append(handled, string(req.Payload))
		mu.Unlock()
		return sdk.NewMessage([]byte("re:" + string(req.Payload))), nil
	}); err != nil {
		e.t.Fatalf("setup: Respond failed: %v", err)
	}
	ctx, cancel = context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	if reply, err := requester.Request(ctx, e.topic, sdk.NewMessage([]byte("fresh"))); err != nil || string(reply.Payload) != "re:fresh" {
		e.t.Fatalf("guarantee broken: a live request must be answered: %v", err)
	}
	time.Sleep(e.h.QuietPeriod) // watching for the stale request to reach the responder
	mu.Lock()
	defer mu.Unlock()
	for _, h := range handled {
		if h == "stale" {
			e.t.Fatalf("guarantee broken: a request whose caller had given up must not reach the responder: handled %v", handled)
		}
	}
}
