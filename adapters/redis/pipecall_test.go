package redis

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/silence"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// A publish runs on its caller's goroutine only while no dial is due:
// once the pipe's connection is cut, the next publish dials, and it still
// returns at its context's cancellation when the server accepts the new
// connection and never answers (rueidis's login waits for the deadline).
// Once the server answers again, publishes run on their callers'
// goroutines again.
func TestAPublishThatMustDialReturnsAtCancellation(t *testing.T) {
	url := testenv.Redis(t)
	sw := silence.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dt, err := Driver{}.Open(ctx, sdk.Config{Driver: "redis", URL: testenv.ProxiedURL(url, func(addr string) string { return sw.Proxy(t, addr) })})
	if err != nil {
		t.Fatal(err)
	}
	tr := dt.(*Transport)
	defer tr.Close()
	if tr.pipe == nil {
		t.Fatal("the transport publishes without a pipe")
	}
	publish := func(ctx context.Context) error {
		return tr.SendBatch(ctx, "pipecall", []*driver.Message{{ID: sdk.NewMessage(nil).ID, Payload: []byte("p")}})
	}
	if err := publish(ctx); err != nil {
		t.Fatalf("publish before the cut: %v", err)
	}
	if !tr.pipe.trusted.Load() {
		t.Fatal("after a publish that succeeded, the pipe is not trusted: publishes would each cost a goroutine")
	}

	sw.Silence()
	sw.Cut()
	testenv.Eventually(t, 5*time.Second, "the pipe to stop trusting its cut connection", func() bool { return !tr.pipe.trusted.Load() })

	callCtx, callCancel := context.WithTimeout(ctx, 30*time.Second)
	const after = 200 * time.Millisecond
	time.AfterFunc(after, callCancel)
	start := time.Now()
	err = publish(callCtx)
	took := time.Since(start)
	if took > after+2*time.Second {
		t.Fatalf("a publish that must dial a silent server returned %v after it started, its context cancelled after %v", took, after)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a publish cancelled while it dials a silent server: got %v, want an error wrapping context.Canceled", err)
	}

	sw.Resume()
	testenv.Eventually(t, 20*time.Second, "a publish to succeed once the server answers", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		return publish(pctx) == nil
	})
	if !tr.pipe.trusted.Load() {
		t.Fatal("after the server answered again, the pipe is not trusted: publishes would each cost a goroutine")
	}
}
