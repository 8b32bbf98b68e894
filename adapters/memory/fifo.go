package memory

// fifo holds a group's waiting envelopes in publish order, in blocks of
// blockSize. One growing slice would do the same with less code, but each
// time it grows it copies every waiting envelope into a new array the
// garbage collector must scan whole: on Go 1.26, appending to a slice of
// 300,000 such envelopes cost about 1 µs an envelope, a block list 15–100
// ns (the in-process publish modes in docs/benchmarks.md).
//
// Envelope i of the fifo is at position head+i, counted across blocks:
// every block but the last is full from position 0, except that the first
// starts at head.
type fifo struct {
	blocks [][]envelope // each blockSize long
	head   int          // position of the first envelope in blocks[0]
	n      int          // envelopes held
	spare  []envelope   // an emptied block kept for the next one needed
}

// blockSize is small enough that a group with a few messages waiting holds
// little (9 KiB), and large enough that a new block is rare.
const blockSize = 128

func (q *fifo) len() int { return q.n }

// at returns the i-th envelope from the front; 0 <= i < q.len().
func (q *fifo) at(i int) *envelope {
	p := q.head + i
	return &q.blocks[p/blockSize][p%blockSize]
}

func (q *fifo) newBlock() []envelope {
	if b := q.spare; b != nil {
		q.spare = nil
		return b
	}
	return make([]envelope, blockSize)
}

// push appends envs at the back.
func (q *fifo) push(envs []envelope) {
	for _, e := range envs {
		p := q.head + q.n
		if p/blockSize == len(q.blocks) {
			q.blocks = append(q.blocks, q.newBlock())
		}
		q.blocks[p/blockSize][p%blockSize] = e
		q.n++
	}
}

// pushFront puts e before the first envelope.
func (q *fifo) pushFront(e envelope) {
	if q.head == 0 {
		q.blocks = append(q.blocks, nil)
		copy(q.blocks[1:], q.blocks)
		q.blocks[0] = q.newBlock()
		q.head = blockSize
	}
	q.head--
	q.blocks[0][q.head] = e
	q.n++
}

// popFront drops the first k envelopes, clearing them so that the garbage
// collector can free what they point to.
func (q *fifo) popFront(k int) {
	for range k {
		*q.at(0) = envelope{}
		q.head++
		q.n--
		if q.head == blockSize || q.n == 0 {
			q.dropFirstBlock()
		}
	}
}

// dropFirstBlock removes blocks[0], whose envelopes are all gone.
func (q *fifo) dropFirstBlock() {
	q.spare = q.blocks[0]
	n := copy(q.blocks, q.blocks[1:])
	q.blocks[n] = nil
	q.blocks = q.blocks[:n]
	q.head = 0
}

// insert puts e at index i, moving the envelopes from i on back by one.
func (q *fifo) insert(i int, e envelope) {
	q.push([]envelope{{}})
	for j := q.n - 1; j > i; j-- {
		*q.at(j) = *q.at(j - 1)
	}
	*q.at(i) = e
}

// keep drops every envelope for which keep returns false, keeping the
// others in order.
func (q *fifo) keep(keep func(*envelope) bool) {
	kept := 0
	for i := range q.n {
		if e := q.at(i); keep(e) {
			*q.at(kept) = *e
			kept++
		}
	}
	for i := kept; i < q.n; i++ {
		*q.at(i) = envelope{}
	}
	q.n = kept
	for len(q.blocks) > (q.head+q.n+blockSize-1)/blockSize {
		last := len(q.blocks) - 1
		q.spare = q.blocks[last]
		q.blocks[last] = nil
		q.blocks = q.blocks[:last]
	}
	if q.n == 0 {
		q.head = 0
	}
}
