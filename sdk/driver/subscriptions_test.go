package driver_test

import (
	"errors"
	"testing"

	"github.com/msgkit/msgkit/sdk/driver"
)

type closer struct {
	closes int
	err    error
}

func (c *closer) Close() error { c.closes++; return c.err }

func TestSubscriptionsCloseEachOpenOneOnce(t *testing.T) {
	var set driver.Subscriptions[*closer]
	a, b, gone := &closer{}, &closer{err: errors.New("b failed")}, &closer{}
	for _, s := range []*closer{a, b, gone} {
		if err := set.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	set.Remove(gone)
	first, err := set.Close()
	if !first || err == nil || err.Error() != "b failed" {
		t.Fatalf("the first Close closes every open subscription and joins their errors, got first=%v err=%v", first, err)
	}
	if a.closes != 1 || b.closes != 1 || gone.closes != 0 {
		t.Fatalf("closed a %d, b %d, removed one %d times; want 1, 1, 0", a.closes, b.closes, gone.closes)
	}
	if first, err := set.Close(); first || err != nil || a.closes != 1 {
		t.Fatalf("a second Close must do nothing, got first=%v err=%v, a closed %d times", first, err, a.closes)
	}
	late := &closer{}
	if err := set.Add(late); !errors.Is(err, driver.ErrClosed) || late.closes != 1 || !set.Closed() {
		t.Fatalf("a subscription added after Close must be closed and refused with ErrClosed, got %v (closed %d times)", err, late.closes)
	}
}
