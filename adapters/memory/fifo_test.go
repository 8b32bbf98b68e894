package memory

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The fifo against a plain slice, through random runs of every operation
// that cross block boundaries both ways, checking after each step that it
// holds the same envelopes in the same order and that every slot it does
// not hold is cleared (so that nothing it dropped stays reachable).
func TestFifoMatchesASlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var q fifo
	var model []envelope
	next := uint64(0)
	env := func() envelope { next++; return envelope{seq: next, id: "m"} }
	most := 0
	for step := range 20000 {
		var op string
		// Phases of 2,000 steps grow the fifo over many blocks and shrink it.
		pushes := 45
		if step/2000%2 == 0 {
			pushes = 60
		}
		switch k := r.IntN(100); {
		case k < pushes:
			op = "push"
			envs := make([]envelope, r.IntN(blockSize/2)+1)
			for i := range envs {
				envs[i] = env()
			}
			q.push(envs)
			model = append(model, envs...)
		case k < pushes+35:
			op = "popFront"
			n := r.IntN(min(len(model), blockSize) + 1)
			q.popFront(n)
			model = model[n:]
		case k < pushes+43:
			op = "pushFront"
			e := env()
			q.pushFront(e)
			model = slices.Insert(model, 0, e)
		case k < pushes+49:
			op = "insert"
			i := r.IntN(len(model) + 1)
			e := env()
			q.insert(i, e)
			model = slices.Insert(model, i, e)
		default:
			op = "keep"
			drop := uint64(r.IntN(5) + 2)
			q.keep(func(e *envelope) bool { return e.seq%drop != 0 })
			model = slices.DeleteFunc(model, func(e envelope) bool { return e.seq%drop == 0 })
		}
		most = max(most, len(model))
		if q.len() != len(model) {
			t.Fatalf("step %d (%s): fifo holds %d, want %d", step, op, q.len(), len(model))
		}
		for i, want := range model {
			if got := *q.at(i); got.seq != want.seq || got.id != want.id {
				t.Fatalf("step %d (%s): envelope %d is seq %d, want %d", step, op, i, got.seq, want.seq)
			}
		}
		for b, block := range q.blocks {
			for i, e := range block {
				p := b*blockSize + i
				if (p < q.head || p >= q.head+q.n) && !cleared(e) {
					t.Fatalf("step %d (%s): block %d slot %d holds seq %d outside the fifo (head %d, %d held)", step, op, b, i, e.seq, q.head, q.n)
				}
			}
		}
		if len(q.blocks) > (q.head+q.n+blockSize-1)/blockSize+1 {
			t.Fatalf("step %d (%s): %d blocks for %d envelopes from %d", step, op, len(q.blocks), q.n, q.head)
		}
		for i, e := range q.spare {
			if !cleared(e) {
				t.Fatalf("step %d (%s): the spare block's slot %d holds seq %d", step, op, i, e.seq)
			}
		}
	}
	if most < 10*blockSize {
		t.Fatalf("the fifo never held more than %d envelopes: the run crossed too few blocks", most)
	}
}

func cleared(e envelope) bool {
	return e.seq == 0 && e.id == "" && e.payload == nil && e.metadata == nil && e.key == ""
}
