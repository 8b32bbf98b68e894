package middleware

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/msgkit/msgkit/sdk"
)

// RetryConfig configures Retry. Zero values take the defaults.
type RetryConfig struct {
	// MaxAttempts is the number of tries in process, the first included.
	// Default 3.
	MaxAttempts int
	// Delay is the wait before the first retry; it doubles up to MaxDelay.
	// Defaults 100ms and 5s.
	Delay, MaxDelay time.Duration
	// MaxDuration bounds the whole retrying; 0 means no bound.
	MaxDuration time.Duration
	// JitterFactor spreads each delay by ± this fraction. Default 0.25.
	JitterFactor float64
	// Retryable decides which errors are worth another try. Default: every
	// error except those marked sdk.Permanent.
	Retryable func(error) bool
	// OnRetry is told before each retry (attempt is the one about to run),
	// for metrics and logs (Observability.OnRetry).
	OnRetry func(msg *sdk.Message, attempt int, err error)
}

// Retry runs the handler again, with exponential backoff and jitter, while
// it fails with a retryable error. The attempt number (1, 2, ...) is in the
// message's metadata under sdk.KeyAttempt for the handler to see. When the
// attempts run out, the last error is returned and the message is nacked for
// the broker to redeliver (or dead-lettered by DeadLetter). A panic counts
// as a failure. Waiting stops when the handler's context ends.
//
// It panics on a negative MaxAttempts, Delay, MaxDelay or MaxDuration, or
// a MaxDelay below Delay.
func Retry(cfg RetryConfig) Middleware {
	if cfg.MaxAttempts < 0 || cfg.Delay < 0 || cfg.MaxDelay < 0 || cfg.MaxDuration < 0 || cfg.MaxDelay > 0 && cfg.MaxDelay < cfg.Delay {
		panic(fmt.Sprintf("middleware.Retry: MaxAttempts %d, Delay %v, MaxDelay %v, MaxDuration %v: none may be negative, and MaxDelay is the longest the delay grows to, at least Delay",
			cfg.MaxAttempts, cfg.Delay, cfg.MaxDelay, cfg.MaxDuration))
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Delay <= 0 {
		cfg.Delay = 100 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 5 * time.Second
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.Delay)
	if cfg.JitterFactor <= 0 {
		cfg.JitterFactor = 0.25
	}
	retryable := cfg.Retryable
	if retryable == nil {
		retryable = func(err error) bool { return !sdk.IsPermanent(err) }
	}
	b := retrypolicy.NewBuilder[any]().
		WithMaxAttempts(cfg.MaxAttempts).
		WithBackoff(cfg.Delay, cfg.MaxDelay).
		WithJitterFactor(cfg.JitterFactor).
		HandleIf(func(_ any, err error) bool { return err != nil && retryable(err) }).
		ReturnLastFailure()
	if cfg.MaxDuration > 0 {
		b = b.WithMaxDuration(cfg.MaxDuration)
	}
	executor := failsafe.With[any](b.Build())
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			// The first attempt runs directly: failsafe-go's executor
			// allocates an execution per run (about 1 µs here), which only
			// the rare message that fails needs to pay for.
			msg.Set(sdk.KeyAttempt, "1")
			err := call(ctx, next, msg)
			if err == nil || !retryable(err) || cfg.MaxAttempts == 1 {
				return err
			}
			first := err
			succeeded := false
			err = executor.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error {
				if e.Attempts() == 1 {
					return first // the attempt already made above
				}
				if cfg.OnRetry != nil {
					cfg.OnRetry(msg, e.Attempts(), e.LastError())
				}
				msg.Set(sdk.KeyAttempt, strconv.Itoa(e.Attempts()))
				err := call(ctx, next, msg)
				succeeded = err == nil
				return err
			})
			if succeeded {
				// failsafe-go reports a context cancelled during the last
				// attempt even when that attempt succeeded; the message was
				// handled, and a nack would have it handled again.
				return nil
			}
			return err
		}
	}
}
