package sdk_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

type order struct {
	ID    string `json:"id"`
	Items int    `json:"items"`
}

type reservation struct {
	OK    bool   `json:"ok"`
	Where string `json:"where"`
}

// A typed handler gets the decoded value; a payload that does not decode
// fails permanently, without reaching it.
func TestHandleDecodesAndRefusesWhatDoesNotDecode(t *testing.T) {
	c := openMemory(t)
	got := make(chan order, 1)
	errs := make(chan error, 2)
	if _, err := c.Subscribe(context.Background(), "orders", "billing", func(ctx context.Context, m *sdk.Message) error {
		err := sdk.Handle(c, func(_ context.Context, o order, _ *sdk.Message) error { got <- o; return nil })(ctx, m)
		if err != nil {
			errs <- err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m, err := c.Encode(order{ID: "o-1", Items: 3})
	if err != nil || m.ContentType != "application/json" {
		t.Fatalf("Encode: %v, content type %q", err, m.ContentType)
	}
	if err := c.Publish(context.Background(), "orders", m, sdk.NewMessage([]byte("{not json"))); err != nil {
		t.Fatal(err)
	}
	if o := testenv.Await(t, got, "the decoded order"); o != (order{ID: "o-1", Items: 3}) {
		t.Fatalf("decoded %+v", o)
	}
	if err := testenv.Await(t, errs, "the decode failure"); !sdk.IsPermanent(err) || !strings.Contains(err.Error(), "sdk_test.order") {
		t.Fatalf("a payload that does not decode must fail permanently, naming the type: %v", err)
	}
	bad := sdk.HandleJSON(func(context.Context, order, *sdk.Message) error { return nil })(context.Background(), sdk.NewMessage([]byte("[")))
	if !sdk.IsPermanent(bad) {
		t.Fatalf("HandleJSON: a payload that does not decode must fail permanently: %v", bad)
	}
}

// A typed request gets a typed reply; a responder's Reject reaches the
// caller as a *RemoteError with its code, and a request that does not
// decode is rejected with CodeBadRequest.
func TestTypedRequestReplyAndRejectCodes(t *testing.T) {
	c := openMemory(t)
	_, err := c.Respond(context.Background(), "inventory.reserve", "inventory", sdk.Reply(c, func(_ context.Context, o order, _ *sdk.Message) (reservation, error) {
		if o.Items > 5 {
			return reservation{}, sdk.Reject("out_of_stock", "only 5 left")
		}
		return reservation{OK: true, Where: "shelf 4"}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := sdk.Request[order, reservation](ctx, c, "inventory.reserve", order{ID: "o-1", Items: 2})
	if err != nil || r != (reservation{OK: true, Where: "shelf 4"}) {
		t.Fatalf("Request: %+v, %v", r, err)
	}
	_, err = sdk.Request[order, reservation](ctx, c, "inventory.reserve", order{ID: "o-2", Items: 9})
	var remote *sdk.RemoteError
	if !errors.As(err, &remote) || remote.Code != "out_of_stock" || remote.Message != "only 5 left" {
		t.Fatalf("want a *RemoteError with code out_of_stock, got %v", err)
	}
	_, err = c.Request(ctx, "inventory.reserve", sdk.NewMessage([]byte("not an order")))
	if !errors.As(err, &remote) || remote.Code != sdk.CodeBadRequest {
		t.Fatalf("a request that does not decode: want code %q, got %v", sdk.CodeBadRequest, err)
	}
}

// Middleware given to Respond wraps the responder's call: here a timeout
// that ends a slow responder, whose error goes back to the caller.
func TestRespondAppliesMiddlewareToTheResponder(t *testing.T) {
	c := openMemory(t)
	var wrapped atomic.Int32
	timeout := func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, m *sdk.Message) error {
			wrapped.Add(1)
			ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			return next(ctx, m)
		}
	}
	_, err := c.Respond(context.Background(), "slow", "svc", func(ctx context.Context, _ *sdk.Message) (*sdk.Message, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}, sdk.WithMiddleware(timeout))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.Request(ctx, "slow", sdk.NewMessage([]byte("x")))
	var remote *sdk.RemoteError
	if !errors.As(err, &remote) || !strings.Contains(remote.Message, "deadline exceeded") || wrapped.Load() != 1 {
		t.Fatalf("the middleware's timeout should end the responder and its error reach the caller: %v (wrapped %d times)", err, wrapped.Load())
	}
}

// A request whose caller has given up is dropped without calling the
// responder, and counted; a live one is answered.
func TestExpiredRequestIsDroppedWithoutCallingTheResponder(t *testing.T) {
	c := openMemory(t)
	if err := c.EnsureGroup(context.Background(), "reserve", "inventory"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := c.Request(ctx, "reserve", sdk.NewMessage([]byte("stale")))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with no responder the request should time out, got %v", err)
	}
	var calls []string
	sub, err := c.Respond(context.Background(), "reserve", "inventory", func(_ context.Context, m *sdk.Message) (*sdk.Message, error) {
		calls = append(calls, string(m.Payload))
		return sdk.NewMessage([]byte("ok")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Request(ctx, "reserve", sdk.NewMessage([]byte("fresh"))); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != "fresh" || sub.ExpiredRequests() != 1 {
		t.Fatalf("only the live request should reach the responder, the stale one counted: calls %v, expired %d", calls, sub.ExpiredRequests())
	}
}

// A request nobody answers fails by its deadline saying it got no reply,
// how long it waited and what to check; one whose caller cancels says so.
func TestRequestWithoutReplySaysWhatItWaitedFor(t *testing.T) {
	c := openMemory(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Request(ctx, "nobody.answers", sdk.NewMessage([]byte("x")))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no reply within") ||
		!strings.Contains(err.Error(), `"nobody.answers"`) || !strings.Contains(err.Error(), "responder subscribed") {
		t.Fatalf("want a deadline error naming the topic and saying no reply came, got %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Request(ctx, "nobody.answers", sdk.NewMessage([]byte("x")))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "given up after") {
		t.Fatalf("want a cancellation error saying the request was given up, got %v", err)
	}
}

// A responder that panics, or returns a reply that cannot be published,
// answers the caller with a CodeInternal error at once, instead of the
// request coming back to fail again until the caller gives up.
func TestResponderPanicAndUnsendableReplyAnswerTheCaller(t *testing.T) {
	c := openMemory(t)
	if _, err := c.Respond(context.Background(), "panics", "svc", func(context.Context, *sdk.Message) (*sdk.Message, error) {
		panic("boom")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Respond(context.Background(), "unsendable", "svc", func(context.Context, *sdk.Message) (*sdk.Message, error) {
		m := sdk.NewMessage([]byte("reply"))
		m.Time = time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)
		return m, nil
	}); err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]string{"panics": "panicked: boom", "unsendable": "time cannot be carried"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		_, err := c.Request(ctx, topic, sdk.NewMessage([]byte("q")))
		cancel()
		var remote *sdk.RemoteError
		if !errors.As(err, &remote) || remote.Code != sdk.CodeInternal || !strings.Contains(remote.Message, want) || time.Since(start) > 4*time.Second {
			t.Fatalf("%s: want a CodeInternal RemoteError saying %q before the deadline, got %v after %v", topic, want, err, time.Since(start))
		}
	}
}

// A typed responder whose reply cannot be encoded answers with
// CodeInternal and the codec's reason.
func TestTypedReplyThatCannotBeEncodedIsInternal(t *testing.T) {
	c := openMemory(t)
	if _, err := c.Respond(context.Background(), "chan", "svc", sdk.Reply(c, func(context.Context, order, *sdk.Message) (chan int, error) {
		return make(chan int), nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := sdk.Request[order, chan int](ctx, c, "chan", order{ID: "o-1"})
	var remote *sdk.RemoteError
	if !errors.As(err, &remote) || remote.Code != sdk.CodeInternal || !strings.Contains(remote.Message, "encode chan int") {
		t.Fatalf("want a CodeInternal RemoteError saying the reply could not be encoded, got %v", err)
	}
}
