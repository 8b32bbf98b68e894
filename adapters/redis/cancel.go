package redis

import "context"

// untilDone runs call and returns its outcome, or ctx's error as soon as
// ctx ends, leaving the call to end by its connection's deadline (a
// publish whose call is left so counts nothing as added). Both Redis
// clients time a call by its context's deadline alone, set on the
// connection, and a context cancelled before it (a service shutting down,
// a relay stopping, a caller gone) would leave the call waiting on a
// silent server until that deadline or rueidis's 10-second
// ConnWriteTimeout. rueidis waits on the context of a call without a
// deadline, but then bounds its dial and handshake by its own timeouts
// only, past the caller's deadline.
func untilDone[T any](ctx context.Context, call func() (T, error)) (T, error) {
	if ctx.Done() == nil {
		return call()
	}
	type outcome struct {
		v   T
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := call()
		done <- outcome{v, err}
	}()
	select {
	case o := <-done:
		return o.v, o.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// errUntilDone is untilDone for a call with nothing to return but its
// error.
func errUntilDone(ctx context.Context, call func() error) error {
	_, err := untilDone(ctx, func() (struct{}, error) { return struct{}{}, call() })
	return err
}
