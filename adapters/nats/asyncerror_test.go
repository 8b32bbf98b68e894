package nats_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/internal/testenv"
)

// What nats.go reports outside any call (here a subscription that fell
// behind, whose messages it dropped) reaches the application's logger, not
// stderr past it.
func TestAsyncErrorsAreLogged(t *testing.T) {
	url := testenv.NATS(t)
	logs := testenv.DefaultLog(t)
	tr, err := openTransport(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var nc *nats.Conn
	if !tr.(interface{ As(any) bool }).As(&nc) {
		t.Fatal("the transport does not give its *nats.Conn")
	}
	sub, err := nc.SubscribeSync("ct-async-error")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(1, -1); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := nc.Publish("ct-async-error", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testenv.WaitLimit)
	for len(logs.Lines("asynchronous error", "slow consumer", "subject=ct-async-error")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log line of the slow consumer within %v; the log:\n%s", testenv.WaitLimit, logs.String())
		}
		time.Sleep(10 * time.Millisecond) // the callback runs on nats.go's goroutine, which signals nothing
	}
}
