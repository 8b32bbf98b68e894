package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

// coalescer sends one topic's publishes when the driver coalesces. A
// publish that finds a free call slot and nobody waiting makes its own
// call, on its own goroutine: with fewer concurrent publishers than
// MaxInFlight, coalescing costs nothing. Publishes that find every slot
// busy queue, and the next slot to free goes to the oldest of them, which
// takes everything queued behind it (up to MaxMessages) into one call: the
// busier the topic, the fuller the calls.
type coalescer struct {
	s     *Sender
	topic string
	max   int // messages per call; 0: no limit

	mu       sync.Mutex
	inFlight int        // slots taken: calls in flight and leads collecting
	queue    []*request // publishes waiting for a slot, oldest first
	// For drivers that fill calls (SendOptions.FillCalls): one lead at a
	// time may wait for the publishers the last call answered.
	lingering bool
	more      chan struct{} // an arrival wakes the lingering lead
	prev      int           // requests in the last call
	took      time.Duration // the last call's duration
	expired   bool          // the last lingering wait ran out
}

// request is part of one Send call: at most MaxMessages messages.
type request struct {
	ctx  context.Context
	msgs []*driver.Message
	res  chan answer // buffered: an answer never blocks whoever gives it
}

// answer is a queued request's outcome: the lead (a free slot to fill and
// send), or the errors of the call that carried it (nil: all sent).
type answer struct {
	lead bool
	errs []error
}

func (s *Sender) coalescer(topic string) *coalescer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.topics[topic]; ok {
		return c
	}
	if s.topics == nil {
		s.topics = map[string]*coalescer{}
	}
	c := &coalescer{s: s, topic: topic, max: s.opts.MaxMessages, more: make(chan struct{}, 1)}
	s.topics[topic] = c
	return c
}

func (c *coalescer) send(ctx context.Context, msgs []*driver.Message) []error {
	max := c.max
	if max <= 0 {
		max = len(msgs)
	}
	if c.s.opts.Unordered && len(msgs) > max {
		return c.sendAtOnce(ctx, msgs, max)
	}
	// A publish larger than one call goes one call after another, so that
	// its messages reach the broker in their order; the others' messages
	// may join each call.
	var errs []error
	for off := 0; off < len(msgs); off += max {
		end := min(off+max, len(msgs))
		if chunkErrs := c.sendChunk(ctx, msgs[off:end]); chunkErrs != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			copy(errs[off:], chunkErrs)
			// What follows is not sent after a failure: sent again later, in
			// order, with what failed.
			for i := end; i < len(msgs); i++ {
				errs[i] = fmt.Errorf("not sent after an earlier message of this publish failed: %w", firstErr(chunkErrs))
			}
			return errs
		}
	}
	return nil
}

// sendAtOnce sends a publish's calls concurrently, for a broker that does
// not keep their order: each takes a call slot, or queues for one, as a
// publish of its own would.
func (c *coalescer) sendAtOnce(ctx context.Context, msgs []*driver.Message, max int) []error {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		chunks = (len(msgs) + max - 1) / max
	)
	wg.Add(chunks)
	for off := 0; off < len(msgs); off += max {
		end := min(off+max, len(msgs))
		go func() {
			defer wg.Done()
			chunkErrs := c.sendChunk(ctx, msgs[off:end])
			if chunkErrs == nil {
				return
			}
			mu.Lock()
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			copy(errs[off:], chunkErrs)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errs
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// notSent is the outcome of n messages whose wait ended: format says how.
func notSent(ctx context.Context, n int, format string) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = fmt.Errorf(format, context.Cause(ctx))
	}
	return errs
}

// sendChunk sends at most MaxMessages messages, in a call of their own or
// in a shared one, and returns nil when all were sent, else one error per
// message.
func (c *coalescer) sendChunk(ctx context.Context, msgs []*driver.Message) []error {
	r := &request{ctx: ctx, msgs: msgs}
	c.mu.Lock()
	if c.inFlight < c.s.opts.MaxInFlight && len(c.queue) == 0 && !c.lingering {
		c.inFlight++
		c.mu.Unlock()
		return c.lead(r)
	}
	r.res = make(chan answer, 1)
	c.queue = append(c.queue, r)
	if c.lingering {
		select {
		case c.more <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	select {
	case a := <-r.res:
		return c.answered(r, a)
	case <-ctx.Done():
	}
	c.mu.Lock()
	if i := slices.Index(c.queue, r); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
		c.mu.Unlock()
		return notSent(ctx, len(msgs), "not sent before the wait ended: %w")
	}
	c.mu.Unlock()
	// Out of the queue: it has the lead (given under the lock, so the
	// answer is here), or it is in a call.
	select {
	case a := <-r.res:
		return c.answered(r, a)
	default:
		// Not answered: counts as not sent; it may arrive anyway.
		return notSent(ctx, len(msgs), "no answer from the broker: %w")
	}
}

// answered returns a queued request's outcome, leading a call first when
// it was given the lead and its wait has not ended.
func (c *coalescer) answered(r *request, a answer) []error {
	if !a.lead {
		return a.errs
	}
	if r.ctx.Err() != nil {
		c.release() // the slot goes to the next in the queue
		return notSent(r.ctx, len(r.msgs), "not sent before the wait ended: %w")
	}
	return c.lead(r)
}

// release frees the caller's slot, and starts the next call when
// publishes are queued.
func (c *coalescer) release() {
	c.mu.Lock()
	c.inFlight--
	c.startQueued()
	c.mu.Unlock()
}

// startQueued gives a free slot to the oldest queued request, which leads
// the next call. One at a time: the lead takes everything queued that fits
// one call, and starts the next when more is left. While a lead lingers,
// what queues is its own. The answer goes out under the lock: see
// sendChunk's wait.
func (c *coalescer) startQueued() {
	if len(c.queue) == 0 || c.inFlight >= c.s.opts.MaxInFlight || c.lingering {
		return
	}
	head := c.queue[0]
	c.queue[0] = nil
	c.queue = c.queue[1:]
	c.inFlight++
	head.res <- answer{lead: true}
}

// lead fills a call with r and what is queued, sends it and returns r's
// outcome. Alone, r is sent on the caller's goroutine with the caller's
// context. Shared, the call runs on a goroutine of its own, bounded by the
// latest deadline among its requests, and r waits for it as the others
// do, until its own deadline.
func (c *coalescer) lead(r *request) []error {
	batch := c.collect(r)
	if len(batch) == 1 {
		start := time.Now()
		errs := perMessage(c.s.t.SendBatch(r.ctx, c.topic, r.msgs), len(r.msgs))
		c.done(1, time.Since(start))
		return errs
	}
	if r.res == nil {
		r.res = make(chan answer, 1)
	}
	c.s.calls.Add(1)
	go c.call(batch)
	select {
	case a := <-r.res:
		return a.errs
	case <-r.ctx.Done():
		return notSent(r.ctx, len(r.msgs), "no answer from the broker: %w")
	}
}

// collect takes r and the queued requests that fit one call. A driver that
// fills calls waits for the publishers its last call answered, who mostly
// publish again at once and reach the queue one by one as they are
// scheduled: for as many as that call carried, and one more unless the
// last wait ran out, up to a tenth of its round trip. A lone publisher
// never waits.
func (c *coalescer) collect(r *request) []*request {
	batch := []*request{r}
	n := len(r.msgs)
	c.mu.Lock()
	defer c.mu.Unlock()
	take := func() {
		for len(c.queue) > 0 && (c.max <= 0 || n+len(c.queue[0].msgs) <= c.max) {
			q := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			batch = append(batch, q)
			n += len(q.msgs)
		}
	}
	take()
	// What does not fit goes in the next call, with a slot of its own.
	defer c.startQueued()
	if !c.s.opts.FillCalls || c.lingering {
		return batch
	}
	want := c.prev
	if c.prev > 1 && !c.expired {
		want++
	}
	wait := min(c.took/10, maxLinger)
	if len(batch) >= want || wait <= 0 || (c.max > 0 && n >= c.max) {
		return batch
	}
	c.lingering = true
	c.expired = false
	select {
	case <-c.more: // a stale wake-up
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for len(batch) < want && (c.max <= 0 || n < c.max) && len(c.queue) == 0 {
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-t.C:
			c.expired = true
		case <-r.ctx.Done():
		}
		c.mu.Lock()
		take()
		if c.expired || r.ctx.Err() != nil || len(c.queue) > 0 {
			break // out of time, or the next one does not fit
		}
	}
	c.lingering = false
	return batch
}

// maxLinger bounds a lead's wait for the publishers the last call
// answered (see collect).
const maxLinger = 2 * time.Millisecond

// done records a finished call for the next lead's wait and frees its slot.
func (c *coalescer) done(requests int, took time.Duration) {
	if c.s.opts.FillCalls {
		c.mu.Lock()
		c.prev, c.took = requests, took
		c.mu.Unlock()
	}
	c.release()
}

// call sends the batch's messages in one call, bounded by the latest
// deadline among them, and answers each request.
func (c *coalescer) call(batch []*request) {
	defer c.s.calls.Done()
	n := 0
	deadline := time.Time{}
	for _, r := range batch {
		n += len(r.msgs)
		if d, ok := r.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
	}
	msgs := make([]*driver.Message, 0, n)
	for _, r := range batch {
		msgs = append(msgs, r.msgs...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	start := time.Now()
	errs := perMessage(c.s.t.SendBatch(ctx, c.topic, msgs), len(msgs))
	cancel()
	c.done(len(batch), time.Since(start))
	off := 0
	for _, r := range batch {
		if errs != nil {
			r.res <- answer{errs: errs[off : off+len(r.msgs)]}
		} else {
			r.res <- answer{}
		}
		off += len(r.msgs)
	}
}
