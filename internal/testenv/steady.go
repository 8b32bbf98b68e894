package testenv

import (
	"sync"
	"sync/atomic"
	"testing"
)

// SteadyPublishing runs goroutines that each call publish count times, one
// after another, and returns what take said when every goroutine's first
// call had returned and when the first goroutine was done: the stretch in
// which all of them publish, without the run-up and the tail. It fails t
// on the first error publish returns.
func SteadyPublishing[T any](t testing.TB, goroutines, count int, publish func() error, take func() T) (from, to T) {
	t.Helper()
	var (
		started, finished atomic.Int32
		wg                sync.WaitGroup
	)
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range count {
				if err := publish(); err != nil {
					errs <- err
					return
				}
				if i == 0 && started.Add(1) == int32(goroutines) {
					from = take() // read after wg.Wait
				}
			}
			if finished.Add(1) == 1 {
				to = take()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return from, to
}
