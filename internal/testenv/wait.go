package testenv

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// WaitLimit bounds Await and AwaitMessage: long enough for a loaded CI
// machine, short enough that a lost message fails the test instead of
// hanging it.
const WaitLimit = 20 * time.Second

// Await returns the next value from ch, or the zero value once ch is closed
// (a closed channel is a signal), failing the test if neither happens within
// WaitLimit. what names the value awaited in the failure message.
func Await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(WaitLimit):
		t.Fatalf("timed out after %v waiting for %s", WaitLimit, what)
	}
	var zero T
	return zero
}

// AwaitMessage is Await for a subscription's channel, where a close is a
// failure: the subscription ended before the message came.
func AwaitMessage(t testing.TB, ch <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("the subscription's channel closed while waiting for %s", what)
		}
		return m
	case <-time.After(WaitLimit):
		t.Fatalf("timed out after %v waiting for %s", WaitLimit, what)
	}
	return nil
}
