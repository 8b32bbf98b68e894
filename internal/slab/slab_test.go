package slab

import "testing"

type record struct {
	id   string
	body []byte
}

func TestNewGivesDistinctZeroValuesInOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7} {
		ps := New[record](n)
		if len(ps) != n {
			t.Fatalf("New(%d) gave %d pointers", n, len(ps))
		}
		seen := map[*record]bool{}
		for i, p := range ps {
			if p == nil || seen[p] {
				t.Fatalf("New(%d): pointer %d is nil or repeated", n, i)
			}
			seen[p] = true
			if p.id != "" || p.body != nil {
				t.Fatalf("New(%d): value %d is not zero: %+v", n, i, *p)
			}
			p.id = string(rune('a' + i))
		}
		for i, p := range ps {
			if p.id != string(rune('a'+i)) {
				t.Fatalf("New(%d): value %d was overwritten by another's write", n, i)
			}
		}
	}
}

func TestNewAllocatesOnceForOneValueAndTwiceForMore(t *testing.T) {
	var sink []*record
	if n := testing.AllocsPerRun(100, func() { sink = New[record](1) }); n != 1 {
		t.Errorf("New(1) allocated %v times, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { sink = New[record](5) }); n != 2 {
		t.Errorf("New(5) allocated %v times, want 2", n)
	}
	_ = sink
}
