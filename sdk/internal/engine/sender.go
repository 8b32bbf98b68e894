package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Sender publishes through a driver: it cuts publishes to the driver's
// batch size, coalesces concurrent ones where the driver asks for it, and
// sends again what failed for a transient reason until the caller's
// deadline.
type Sender struct {
	t    driver.Transport
	opts driver.SendOptions

	mu      sync.Mutex
	closed  bool
	topics  map[string]*coalescer
	running sync.WaitGroup // Send calls in progress
}

// NewSender returns a Sender on t.
func NewSender(t driver.Transport) *Sender {
	opts := t.SendOptions()
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 4
	}
	return &Sender{t: t, opts: opts}
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("sender closed")

// Send publishes msgs to topic and returns when the broker took every one,
// or with the first failure. A message that failed for a transient reason
// is sent again, with backoff, until ctx ends (or the driver's Timeout, when
// ctx has no deadline); a message may then arrive twice, never zero times.
func (s *Sender) Send(ctx context.Context, topic string, msgs []*driver.Message) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.running.Add(1)
	s.mu.Unlock()
	defer s.running.Done()
	if _, ok := ctx.Deadline(); !ok && s.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
	}
	pending := msgs
	backoff := 20 * time.Millisecond
	var last error // the last failure the broker (or the connection) gave, not the wait's end
	for {
		errs := s.sendOnce(ctx, topic, pending)
		if errs == nil {
			return nil
		}
		var retry []*driver.Message
		for i, err := range errs {
			if err == nil {
				continue
			}
			if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
				last = err
			}
			if ctx.Err() == nil && !s.t.IsRetryable(err) {
				return fmt.Errorf("%d of %d message(s) not sent (message %s refused): %w", countErrs(errs), len(msgs), pending[i].ID, err)
			}
			retry = append(retry, pending[i])
		}
		if len(retry) == 0 {
			return nil
		}
		if ctx.Err() == nil {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			if last == nil {
				return fmt.Errorf("%d of %d message(s) not sent when the wait ended: %w", len(retry), len(msgs), context.Cause(ctx))
			}
			return fmt.Errorf("%d of %d message(s) not sent when the wait ended (%w); the last attempt that got an answer failed with: %w",
				len(retry), len(msgs), context.Cause(ctx), last)
		}
		backoff = min(2*backoff, time.Second)
		pending = retry
	}
}

func countErrs(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

// sendOnce makes one attempt at every message and returns nil when all were
// sent, else one error per message.
func (s *Sender) sendOnce(ctx context.Context, topic string, msgs []*driver.Message) []error {
	if s.opts.Coalesce {
		return s.coalescer(topic).send(ctx, msgs)
	}
	var errs []error
	max := s.opts.MaxMessages
	if max <= 0 {
		max = len(msgs)
	}
	for off := 0; off < len(msgs); off += max {
		chunk := msgs[off:min(off+max, len(msgs))]
		if chunkErrs := perMessage(s.t.SendBatch(ctx, topic, chunk), len(chunk)); chunkErrs != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			copy(errs[off:], chunkErrs)
		}
	}
	return errs
}

// perMessage spreads SendBatch's error over its n messages: nil when all
// were sent.
func perMessage(err error, n int) []error {
	if err == nil {
		return nil
	}
	var be driver.BatchError
	if errors.As(err, &be) && len(be) == n {
		if countErrs(be) == 0 {
			return nil
		}
		return be
	}
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// Close waits for Send calls in progress and stops the coalescers. Send
// fails with ErrClosed afterwards.
func (s *Sender) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	topics := s.topics
	s.mu.Unlock()
	s.running.Wait()
	for _, c := range topics {
		close(c.stop)
		c.wg.Wait()
	}
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
	c := &coalescer{s: s, topic: topic, in: make(chan *request, s.opts.MaxInFlight), stop: make(chan struct{})}
	for range s.opts.MaxInFlight {
		c.wg.Add(1)
		go c.run()
	}
	s.topics[topic] = c
	return c
}

// coalescer sends one topic's publishes. Each of its MaxInFlight senders
// takes a request and adds whatever else is waiting, up to MaxMessages, to
// the same SendBatch: one big publish costs one call per MaxMessages,
// concurrent small ones share calls under load, and a lone one leaves at
// once.
type coalescer struct {
	s     *Sender
	topic string
	in    chan *request
	stop  chan struct{}
	wg    sync.WaitGroup

	prev atomic.Int64 // requests in the last call
	took atomic.Int64 // the last call's duration

	filling sync.Mutex // held by the sender collecting the next call
	carry   *request   // taken, and too big for the call it was taken for
	expired bool       // the last collection's wait ran out
}

// request is part of one Send call: at most MaxMessages messages.
type request struct {
	ctx  context.Context
	msgs []*driver.Message
	res  chan []error // buffered: a late result never blocks a sender
}

func (c *coalescer) send(ctx context.Context, msgs []*driver.Message) []error {
	max := c.s.opts.MaxMessages
	if max <= 0 {
		max = len(msgs)
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

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sendChunk queues at most MaxMessages messages for the next call and
// waits for its answer: nil when all were sent, else one error per message.
func (c *coalescer) sendChunk(ctx context.Context, msgs []*driver.Message) []error {
	notSent := func(format string) []error {
		errs := make([]error, len(msgs))
		for i := range errs {
			errs[i] = fmt.Errorf(format, context.Cause(ctx))
		}
		return errs
	}
	r := &request{ctx: ctx, msgs: msgs, res: make(chan []error, 1)}
	select {
	case c.in <- r:
	case <-ctx.Done():
		return notSent("not sent before the wait ended: %w")
	}
	select {
	case errs := <-r.res:
		return errs
	case <-ctx.Done():
		// Not answered: counts as not sent; it may arrive anyway.
		return notSent("no answer from the broker: %w")
	}
}

func (c *coalescer) run() {
	defer c.wg.Done()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		batch, n, ok := c.collect(linger)
		if !ok {
			return
		}
		start := time.Now()
		c.sendBatch(batch, n)
		c.prev.Store(int64(len(batch)))
		c.took.Store(int64(time.Since(start)))
	}
}

// collect takes the requests of the next call; ok is false when the
// coalescer stops. One sender collects at a time, so that calls are filled
// one after another instead of several senders each taking a part of
// what arrives.
func (c *coalescer) collect(linger *time.Timer) (batch []*request, n int, ok bool) {
	c.filling.Lock()
	defer c.filling.Unlock()
	first := c.carry
	c.carry = nil
	if first == nil {
		select {
		case first = <-c.in:
		case <-c.stop:
			return nil, 0, false
		}
	}
	batch = []*request{first}
	n = len(first.msgs)
	max := c.s.opts.MaxMessages
	// The publishers a shared call answered mostly publish again at once,
	// and reach the queue one by one as they are scheduled. Wait for as
	// many as the last call carried, and one more unless the last wait ran
	// out, up to a tenth of its round trip: they leave together instead of
	// the first alone and the rest behind it, and calls grow as long as
	// publishers keep up. A lone publisher never waits.
	prev := int(c.prev.Load())
	want := prev
	if prev > 1 && !c.expired {
		want++
	}
	wait := min(time.Duration(c.took.Load())/10, maxLinger)
	lingering := false
	// Stopped on every return: a timer's channel keeps no stale value
	// after Stop or Reset (Go 1.23 and later), so it needs no draining.
	defer linger.Stop()
	c.expired = false
	for max <= 0 || n < max {
		var r *request
		select {
		case r = <-c.in:
		default:
			if len(batch) >= want || wait <= 0 {
				return batch, n, true
			}
			if !lingering {
				lingering = true
				linger.Reset(wait)
			}
			select {
			case r = <-c.in:
			case <-linger.C:
				c.expired = true
				return batch, n, true
			}
		}
		if max > 0 && n+len(r.msgs) > max {
			c.carry = r
			break
		}
		batch = append(batch, r)
		n += len(r.msgs)
	}
	return batch, n, true
}

// maxLinger bounds a coalescer's wait for the publishers its last call
// answered (see run).
const maxLinger = 2 * time.Millisecond

// sendBatch sends the requests' messages in one call, bounded by the
// latest deadline among them, and answers each request.
func (c *coalescer) sendBatch(batch []*request, n int) {
	msgs := make([]*driver.Message, 0, n)
	deadline := time.Time{}
	for _, r := range batch {
		msgs = append(msgs, r.msgs...)
		if d, ok := r.ctx.Deadline(); ok && d.After(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	errs := perMessage(c.s.t.SendBatch(ctx, c.topic, msgs), len(msgs))
	cancel()
	off := 0
	for _, r := range batch {
		if errs != nil {
			r.res <- errs[off : off+len(r.msgs)]
		} else {
			r.res <- nil
		}
		off += len(r.msgs)
	}
}
