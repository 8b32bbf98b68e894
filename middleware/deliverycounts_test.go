package middleware

import (
	"fmt"
	"testing"
)

// A forgotten id leaves no stale place in the eviction order: three live
// counts under a bound of three are all kept, and the bound evicts the
// least recently failed id.
func TestDeliveryCountsForgetKeepsLiveCounts(t *testing.T) {
	d := newDeliveryCounts(3)
	d.add("a")
	d.forget("a") // a was handled after one failure
	d.add("b")
	if n := d.add("a"); n != 1 {
		t.Fatalf("a failed again after it was forgotten: count %d, want 1", n)
	}
	d.add("c")
	if n := d.add("a"); n != 2 {
		t.Fatalf("a, b and c are live under a bound of 3, yet a's count was evicted: got %d, want 2", n)
	}
	d.add("d") // evicts b, the least recently failed
	if n := d.add("b"); n != 1 {
		t.Fatalf("b should have been evicted by d: count %d, want 1", n)
	}
	for i := range 100 {
		d.add(fmt.Sprint(i))
		d.forget(fmt.Sprint(i - 1))
	}
	if len(d.n) > 3 || d.order.Len() != len(d.n) || d.size.Load() != int64(len(d.n)) {
		t.Fatalf("bookkeeping drifted: %d counts, %d in the eviction order, size %d", len(d.n), d.order.Len(), d.size.Load())
	}
}
