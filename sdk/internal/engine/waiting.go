package engine

import (
	"container/heap"
	"slices"
	"time"
)

// waiting holds the messages received and not running, so that taking the
// next one costs O(log n) however many are held: a heap, by receive order,
// of every unkeyed message and of the first message of each ordering key
// that has none running. A key's other messages wait in its queue.
type waiting struct {
	seq     uint64
	ready   readyHeap
	keys    map[string]*keyQueue
	spare   []*keyQueue // emptied queues, kept for the next keys
	delayed []*item     // redeliveries whose time has not come
	n       int         // messages held here, ready, queued or delayed
}

// maxSpare bounds the emptied key queues kept for reuse. A key's queue
// empties each time its messages are all handled, and a broker that orders
// by partition sends the same few keys over and over: reusing the queue
// and its slice saves two allocations a message there.
const maxSpare = 64

// maxSpareItems bounds the slice a kept queue keeps: after a burst on one
// key, its slice goes with the burst.
const maxSpareItems = 256

// keyQueue is one ordering key's messages, in receive order: items[head:].
// While busy, its first message is running or delayed, and none is in the
// heap.
type keyQueue struct {
	items []*item
	head  int
	busy  bool
}

func (q *keyQueue) queued() []*item { return q.items[q.head:] }
func (q *keyQueue) first() *item    { return q.items[q.head] }

// push adds it at the end. A full slice whose front is at least half
// taken is compacted instead of grown: a key that always has messages
// waiting never empties its queue, and its slice would otherwise grow
// with every message it ever had.
func (q *keyQueue) push(it *item) {
	if len(q.items) == cap(q.items) && q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, it)
}

// pop removes the first message, and starts the slice afresh once it is
// empty, so a queue's slice is reused instead of creeping forward.
func (q *keyQueue) pop() {
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
}

// pushFront puts it before the queue's messages.
func (q *keyQueue) pushFront(it *item) {
	if q.head > 0 {
		q.head--
		q.items[q.head] = it
		return
	}
	q.items = slices.Insert(q.items, 0, it)
}

// queue returns key's queue, a spare one when key has none.
func (w *waiting) queue(k string) *keyQueue {
	q := w.keys[k]
	if q == nil {
		if n := len(w.spare); n > 0 {
			q, w.spare = w.spare[n-1], w.spare[:n-1]
		} else {
			q = &keyQueue{}
		}
		w.keys[k] = q
	}
	return q
}

func newWaiting() waiting { return waiting{keys: map[string]*keyQueue{}} }

// add takes a newly received message.
func (w *waiting) add(it *item) {
	w.seq++
	it.seq = w.seq
	w.n++
	k := it.m.OrderingKey
	if k == "" {
		heap.Push(&w.ready, it)
		return
	}
	q := w.queue(k)
	q.push(it)
	if !q.busy && len(q.queued()) == 1 {
		heap.Push(&w.ready, it)
	}
}

// take returns the next message that may run, in receive order, or nil and
// when a delayed one becomes due (zero: none is delayed).
func (w *waiting) take(now func() time.Time) (*item, time.Time) {
	var wake time.Time
	if len(w.delayed) > 0 {
		t := now()
		kept := w.delayed[:0]
		for _, it := range w.delayed {
			if it.notBefore.After(t) {
				kept = append(kept, it)
				if wake.IsZero() || it.notBefore.Before(wake) {
					wake = it.notBefore
				}
				continue
			}
			it.notBefore = time.Time{}
			if q := w.keys[it.m.OrderingKey]; q != nil {
				q.busy = false
			}
			heap.Push(&w.ready, it)
		}
		clear(w.delayed[len(kept):])
		w.delayed = kept
	}
	if len(w.ready) == 0 {
		return nil, wake
	}
	it := heap.Pop(&w.ready).(*item)
	w.n--
	if k := it.m.OrderingKey; k != "" {
		q := w.keys[k]
		q.pop()
		q.busy = true
	}
	return it, time.Time{}
}

// done ends a running message's hold on its key, and reports whether the
// key's next message may now run.
func (w *waiting) done(it *item) bool {
	k := it.m.OrderingKey
	if k == "" {
		return false
	}
	q := w.keys[k]
	if q == nil {
		return false
	}
	q.busy = false
	if len(q.queued()) > 0 {
		heap.Push(&w.ready, q.first())
		return true
	}
	delete(w.keys, k)
	if len(w.spare) < maxSpare {
		q.items, q.head = q.items[:0], 0
		if cap(q.items) > maxSpareItems {
			q.items = nil // a burst's slice is not worth keeping
		}
		w.spare = append(w.spare, q)
	}
	return false
}

// again puts a running message back to run again, before the rest of its
// key, at once or once its notBefore has come.
func (w *waiting) again(it *item) {
	w.n++
	k := it.m.OrderingKey
	if k != "" {
		q := w.queue(k)
		q.pushFront(it)
		q.busy = true // until it is back in the heap
	}
	if !it.notBefore.IsZero() {
		w.delayed = append(w.delayed, it)
		return
	}
	if k != "" {
		w.keys[k].busy = false
	}
	heap.Push(&w.ready, it)
}

// dropKey removes and returns the waiting messages of key (a nack hands
// them back with the one that failed).
func (w *waiting) dropKey(k string) []*item {
	q := w.keys[k]
	if q == nil {
		return nil
	}
	delete(w.keys, k)
	items := q.queued()
	if !q.busy && len(items) > 0 {
		for i, it := range w.ready {
			if it == items[0] {
				heap.Remove(&w.ready, i)
				break
			}
		}
	}
	w.n -= len(items)
	return items // the caller's now: q is not reused
}

// all removes and returns every waiting message.
func (w *waiting) all() []*item {
	out := make([]*item, 0, w.n)
	for _, it := range w.ready {
		if it.m.OrderingKey == "" {
			out = append(out, it)
		}
	}
	for _, it := range w.delayed {
		if it.m.OrderingKey == "" {
			out = append(out, it)
		}
	}
	for _, q := range w.keys {
		out = append(out, q.queued()...)
	}
	*w = newWaiting()
	return out
}

// each calls f for every waiting message.
func (w *waiting) each(f func(*item)) {
	for _, it := range w.ready {
		if it.m.OrderingKey == "" {
			f(it)
		}
	}
	for _, it := range w.delayed {
		if it.m.OrderingKey == "" {
			f(it)
		}
	}
	for _, q := range w.keys {
		for _, it := range q.queued() {
			f(it)
		}
	}
}

// readyHeap orders messages by receive sequence.
type readyHeap []*item

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h readyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)        { *h = append(*h, x.(*item)) }
func (h *readyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
