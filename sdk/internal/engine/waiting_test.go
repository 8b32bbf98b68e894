package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

func keyed(key string, n int) *item {
	return &item{m: &driver.Message{ID: fmt.Sprintf("%s/%d", key, n), OrderingKey: key}}
}

// Random receives, takes, completions and put-backs, checked against a
// model: a key's messages run one at a time and in receive order (a
// message put back runs before the rest of its key), unkeyed ones in
// receive order, and every message runs; queues emptied and reused along
// the way keep nothing of their last key.
func TestWaitingKeepsEachKeysOrderWhileReusingQueues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWaiting()
	keys := []string{"", "p0", "p1", "p2", "p3"}
	pending := map[string][]*item{} // the model: each key's messages not running, in the order they must run
	running := []*item{}
	busy := map[string]bool{}
	added, finished := 0, 0
	never := func() time.Time { return time.Time{} }
	check := func(it *item) {
		t.Helper()
		k := it.m.OrderingKey
		if k != "" && busy[k] {
			t.Fatalf("took %s while another message of key %q runs", it.m.ID, k)
		}
		if len(pending[k]) == 0 || pending[k][0] != it {
			t.Fatalf("took %s (key %q), want the first of the key's waiting messages %v", it.m.ID, k, itemIDs(pending[k]))
		}
		pending[k] = pending[k][1:]
		if k != "" {
			busy[k] = true
		}
		running = append(running, it)
	}
	for step := 0; step < 20000; step++ {
		switch op := rng.IntN(10); {
		case op < 4 && added < 5000:
			k := keys[rng.IntN(len(keys))]
			it := keyed(k, added)
			added++
			w.add(it)
			pending[k] = append(pending[k], it)
		case op < 7:
			if it, _ := w.take(never); it != nil {
				check(it)
			}
		case len(running) > 0:
			i := rng.IntN(len(running))
			it := running[i]
			running = append(running[:i], running[i+1:]...)
			k := it.m.OrderingKey
			if op == 9 { // put back, to run again first
				busy[k] = false
				w.again(it)
				// A key's message runs before the rest of its key;
				// unkeyed ones run by receive order.
				at := 0
				for k == "" && at < len(pending[k]) && pending[k][at].seq < it.seq {
					at++
				}
				pending[k] = slices.Insert(pending[k], at, it)
				continue
			}
			busy[k] = false
			w.done(it)
			finished++
		}
	}
	for {
		for _, it := range running {
			busy[it.m.OrderingKey] = false
			w.done(it)
			finished++
		}
		running = running[:0]
		it, _ := w.take(never)
		if it == nil {
			break
		}
		check(it)
	}
	if finished != added {
		t.Fatalf("%d messages finished of %d added", finished, added)
	}
	if w.n != 0 || len(w.keys) != 0 {
		t.Fatalf("after every message ran, %d are held and %d keys have queues", w.n, len(w.keys))
	}
	if len(w.spare) == 0 {
		t.Fatal("no emptied queue was kept for reuse")
	}
}

// Once a key's queue has been made, its messages coming and going make no
// garbage: a broker that orders by partition sends the same keys all day.
func TestAKeysMessagesComingAndGoingAllocateNothing(t *testing.T) {
	w := newWaiting()
	its := []*item{keyed("p0", 0), keyed("p0", 1), keyed("p1", 2)}
	never := func() time.Time { return time.Time{} }
	cycle := func() {
		for _, it := range its {
			w.add(it)
		}
		for range its {
			it, _ := w.take(never)
			if it == nil {
				t.Fatal("a message that may run was not taken")
			}
			w.done(it)
		}
	}
	cycle()
	if n := testing.AllocsPerRun(100, cycle); n != 0 {
		t.Errorf("adding, taking and finishing 3 keyed messages allocated %v times, want 0", n)
	}
}

func itemIDs(its []*item) []string {
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = it.m.ID
	}
	return out
}

// A queue kept for reuse does not keep the slice of a burst on its key.
func TestAKeptQueueDropsABurstsSlice(t *testing.T) {
	w := newWaiting()
	never := func() time.Time { return time.Time{} }
	for i := range 10 * maxSpareItems {
		w.add(keyed("p0", i))
	}
	for {
		it, _ := w.take(never)
		if it == nil {
			break
		}
		w.done(it)
	}
	if len(w.spare) != 1 {
		t.Fatalf("%d queues kept, want the emptied one", len(w.spare))
	}
	if c := cap(w.spare[0].items); c > maxSpareItems {
		t.Errorf("the kept queue holds a slice of capacity %d, want at most %d", c, maxSpareItems)
	}
}

// A key that always has messages waiting never empties its queue; the
// queue's slice stays the size of its backlog, not of its history.
func TestAKeyWithAStandingBacklogKeepsItsSliceSmall(t *testing.T) {
	w := newWaiting()
	never := func() time.Time { return time.Time{} }
	const backlog = 100
	n := 0
	for ; n < backlog; n++ {
		w.add(keyed("p0", n))
	}
	for range 100000 {
		it, _ := w.take(never)
		if it == nil {
			t.Fatal("the key's next message was not taken")
		}
		w.add(keyed("p0", n))
		n++
		w.done(it)
	}
	if c := cap(w.keys["p0"].items); c > 4*backlog {
		t.Fatalf("after 100,000 messages through a backlog of %d, the key's slice has capacity %d", backlog, c)
	}
}
