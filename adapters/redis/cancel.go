package redis

import "context"

// untilDone runs call, a publish, and returns its outcome, or ctx's error
// as soon as ctx ends, leaving the call to end by its connection's
// deadline: nothing is counted as added then. Both Redis clients time a
// call by its context's deadline alone, set on the connection, and a
// context cancelled before it (a service shutting down, a relay stopping,
// a caller gone) would leave the publish waiting on a silent server until
// that deadline or rueidis's 10-second ConnWriteTimeout. rueidis waits on
// the context of a call without a deadline, but then bounds its dial and
// handshake by its own timeouts only, past the caller's deadline.
func untilDone(ctx context.Context, call func() (int, error)) (int, error) {
	if ctx.Done() == nil {
		return call()
	}
	type outcome struct {
		added int
		err   error
	}
	done := make(chan outcome, 1)
	go func() {
		added, err := call()
		done <- outcome{added, err}
	}()
	select {
	case o := <-done:
		return o.added, o.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
