// Package engine is msgkit's delivery engine: the one place that decides
// what "delivered" means, for every driver. A Receiver runs a subscription
// (handler concurrency, per-key order, ack batching, leases, redelivery,
// drain); a Sender publishes (batch limits, coalescing, retry). Drivers
// supply only the broker calls of package driver.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Handle processes one message and reports whether to ack it. It is called
// from the receiver's worker goroutines.
type Handle func(m *driver.Message) bool

// Config configures a Receiver.
type Config struct {
	// Concurrency is how many handler calls run at once. Default 1.
	Concurrency int
	// Logger receives what the engine cannot return: failed acks, receive
	// errors it retries. Default slog.Default().
	Logger *slog.Logger
	// Where names the subscription in logs and errors ("topic/group").
	Where string
	// OnDeadline runs when Stop's context ends with handlers still
	// running, before Stop gives up on them (it cancels their contexts).
	OnDeadline func()
	// NackBackoff spaces out the redeliveries of a message that keeps
	// failing. Zero: redelivered at once (after the driver's
	// RedeliveryDelay).
	NackBackoff Backoff
}

// Backoff is an exponential delay: Initial after the first failure, twice
// as long after each next one, never more than Max.
type Backoff struct {
	Initial, Max time.Duration
}

// Delay is how long a message waits after its failures-th failed delivery.
func (b Backoff) Delay(failures int) time.Duration {
	if b.Initial <= 0 || failures <= 0 {
		return 0
	}
	d := b.Initial
	for i := 1; i < failures && (b.Max <= 0 || d < b.Max); i++ {
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	return d
}

// deferredNack is a nacked message the receiver holds until its delay is
// over, for a driver whose broker cannot wait (DelaysNacks false), with the
// later messages of its key that arrive meanwhile.
type deferredNack struct {
	key   string
	ids   []driver.AckID
	timer *time.Timer
}

// maxFailureCounts bounds the failure counts kept per message id.
const maxFailureCounts = 10000

// flatten appends md to buf as key, value, key, value... and returns
// md's part, capped so that nothing appended to it reaches the next's.
func flatten(buf *[]string, md map[string]string) []string {
	if len(md) == 0 {
		return nil
	}
	start := len(*buf)
	for k, v := range md {
		*buf = append(*buf, k, v)
	}
	return (*buf)[start:len(*buf):len(*buf)]
}

// metadataEntries counts the metadata entries of msgs.
func metadataEntries(msgs []*driver.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Metadata)
	}
	return n
}

// unflatten makes a map again of what flatten copied.
func unflatten(kv []string) map[string]string {
	md := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		md[kv[i]] = kv[i+1]
	}
	return md
}

// item is one received message the receiver holds.
type item struct {
	m         *driver.Message
	received  []string  // the metadata as received (key, value, ...), for a redelivery here
	notBefore time.Time // a redelivery here waits until then
	seq       uint64    // receive order
	failures  int       // failed deliveries here
}

// Receiver delivers one driver subscription's messages to a handler.
type Receiver struct {
	sub    driver.Subscription
	opts   driver.Options
	canNak bool
	handle Handle
	cfg    Config

	mu       sync.Mutex
	ready    wakeup             // workers wait here for a message they may take
	room     wakeup             // the fetcher waits here for room to fetch
	flowing  wakeup             // extra fetchers wait here while receives come back empty
	isFlow   bool               // the last receive returned messages
	waiting  waiting            // received, not handed to a handler
	running  map[*item]struct{} // items in a handler; kept only with a lease to extend
	held     int                // received and not settled
	acks     []driver.AckID     // acked, not yet sent
	spare    []driver.AckID     // a sent batch's buffer, for the next
	flushNow chan struct{}      // asks the flusher to send the acks now
	stopping bool

	// Nack backoff for drivers that hand messages back: failed deliveries
	// per message id (the broker's count when it has one is larger), and
	// the nacks held back until their delay is over, by ordering key.
	failures   map[string]int
	deferred   map[string]*deferredNack
	pending    map[*deferredNack]struct{}
	deferredWG sync.WaitGroup // held nacks whose timer has not finished

	fetchCtx    context.Context
	stopFetch   context.CancelFunc
	fetchers    sync.WaitGroup
	fetcherDone chan struct{} // closed when every fetcher has returned
	workers     sync.WaitGroup
	helpers     sync.WaitGroup // ack flusher and lease keeper
	helpersStop chan struct{}
	stopOnce    sync.Once
	stopErr     error
}

// Start runs sub, calling handle for each message, until Stop.
func Start(sub driver.Subscription, handle Handle, cfg Config) *Receiver {
	opts := withDefaults(sub.Options())
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Receiver{
		sub: sub, opts: opts, canNak: sub.CanNack(), handle: handle, cfg: cfg,
		waiting: newWaiting(), flushNow: make(chan struct{}, 1),
		failures: map[string]int{}, deferred: map[string]*deferredNack{}, pending: map[*deferredNack]struct{}{},
		fetcherDone: make(chan struct{}), helpersStop: make(chan struct{}),
	}
	if opts.Lease > 0 {
		r.running = map[*item]struct{}{}
	}
	r.fetchCtx, r.stopFetch = context.WithCancel(context.Background())
	r.fetchers.Add(opts.Receivers)
	for i := range opts.Receivers {
		go r.fetch(i > 0)
	}
	go func() { r.fetchers.Wait(); close(r.fetcherDone) }()
	for range cfg.Concurrency {
		r.workers.Add(1)
		go r.work()
	}
	r.helpers.Add(1)
	go r.flusher(opts.AckFlush)
	if opts.Lease > 0 {
		r.helpers.Add(1)
		go r.every(opts.Lease/3, func() { r.extendLeases(max(opts.Lease/3, time.Second)) })
	}
	return r
}

func withDefaults(o driver.Options) driver.Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.Receivers <= 0 {
		o.Receivers = 1
	}
	if o.AckBatch <= 0 {
		o.AckBatch = o.MaxBatch
	}
	if o.AckFlush <= 0 {
		o.AckFlush = 100 * time.Millisecond
	}
	return o
}

// wakeup lets goroutines wait for a change under r.mu without a channel
// made per change: one is made only when someone waits.
type wakeup struct{ ch chan struct{} }

// wait returns a channel closed by the next broadcast. r.mu is held.
func (w *wakeup) wait() <-chan struct{} {
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// broadcast wakes every waiter. r.mu is held.
func (w *wakeup) broadcast() {
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// roomLimit is how many messages the receiver holds before it stops
// fetching: a batch ahead of the one being handled, or one per handler.
func (r *Receiver) roomLimit() int { return max(r.opts.MaxBatch, r.cfg.Concurrency) }

// fetch receives a full batch (MaxBatch) whenever the receiver holds at
// most roomLimit messages: the next batch arrives while one is handled, and
// no receive asks for less than a batch (SQS bills per call). Options'
// Receivers fetchers run it at once; the extra ones only while receives
// return messages, so an idle subscription has one receive waiting, not
// several (each a billed call on SQS).
func (r *Receiver) fetch(extra bool) {
	defer r.fetchers.Done()
	n := r.opts.MaxBatch
	limit := r.roomLimit()
	backoff := 100 * time.Millisecond
	for {
		r.mu.Lock()
		for (r.held > limit || extra && !r.isFlow) && !r.stopping {
			var changed <-chan struct{}
			if r.held > limit {
				changed = r.room.wait()
			} else {
				changed = r.flowing.wait()
			}
			r.mu.Unlock()
			<-changed
			r.mu.Lock()
		}
		if r.stopping {
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()

		msgs, err := r.sub.ReceiveBatch(r.fetchCtx, n)
		if len(msgs) > 0 {
			items := make([]item, len(msgs)) // one allocation a batch
			var received []string            // and one for their metadata as received
			if !r.canNak {
				received = make([]string, 0, 2*metadataEntries(msgs))
			}
			r.mu.Lock()
			for i, m := range msgs {
				it := &items[i]
				it.m = m
				if !r.canNak {
					// Redelivered here after a nack: the handler gets the
					// metadata as received, not what the failed one wrote.
					// A flat copy: a slice costs a fraction of a map,
					// and only a redelivery here makes a map of it.
					it.received = flatten(&received, m.Metadata)
				}
				if d := r.deferred[m.OrderingKey]; d != nil && m.OrderingKey != "" {
					d.ids = append(d.ids, m.AckID) // goes back after its key's held nack, in order
					continue
				}
				r.waiting.add(it)
			}
			r.held += len(msgs)
			r.ready.broadcast()
			if !r.isFlow {
				r.isFlow = true
				r.flowing.broadcast()
			}
			r.mu.Unlock()
		} else if err == nil {
			r.mu.Lock()
			r.isFlow = false // the broker has nothing: the extra fetchers rest
			r.mu.Unlock()
		}
		if r.fetchCtx.Err() != nil {
			return
		}
		if errors.Is(err, driver.ErrClosed) {
			// Closed under the receiver (its transport was closed before
			// the client): no retry can help. What is held is still handled,
			// and its settling fails.
			r.cfg.Logger.Error("messaging: the subscription was closed by its driver; it receives no more messages (close the client before its transport)",
				"subscription", r.cfg.Where, "error", err)
			return
		}
		if err != nil {
			r.cfg.Logger.Warn("messaging: receiving failed; retrying", "subscription", r.cfg.Where, "error", err, "retry_in", backoff)
			select {
			case <-r.fetchCtx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// work takes messages and runs the handler on them until the receiver stops.
func (r *Receiver) work() {
	defer r.workers.Done()
	for {
		it := r.take()
		if it == nil {
			return
		}
		r.settle(it, r.handle(it.m))
	}
}

// take returns the next waiting message that may run (its key free, its
// redelivery delay over), or nil once the receiver stops. Acks are sent
// before it blocks: nothing else is going on.
func (r *Receiver) take() *item {
	for {
		r.mu.Lock()
		if r.stopping {
			r.mu.Unlock()
			return nil
		}
		it, wake := r.waiting.take(time.Now)
		if it != nil {
			if r.running != nil {
				r.running[it] = struct{}{}
			}
			r.mu.Unlock()
			return it
		}
		changed := r.ready.wait()
		if len(r.acks) > 0 {
			r.flushSoon() // nothing else is going on
		}
		r.mu.Unlock()
		if wake.IsZero() {
			<-changed
			continue
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// settle records the handler's verdict on it.
func (r *Receiver) settle(it *item, acked bool) {
	r.mu.Lock()
	if r.running != nil {
		delete(r.running, it)
	}
	switch {
	case acked:
		if len(r.failures) > 0 {
			delete(r.failures, it.m.ID)
		}
		if r.waiting.done(it) {
			r.ready.broadcast() // its key's next message may run
		}
		if r.opts.AckBatch == 1 {
			// Acks one at a time: a broker that hands out its next message
			// only after an ack (a Watermill subscription) must have it
			// before the fetcher hears of the room.
			r.mu.Unlock()
			r.send([]driver.AckID{it.m.AckID})
			r.mu.Lock()
			r.release(1)
			r.mu.Unlock()
			return
		}
		r.release(1)
		r.acks = append(r.acks, it.m.AckID)
		if len(r.acks) >= r.opts.AckBatch {
			r.flushSoon()
		}
		r.mu.Unlock()
	case !r.canNak:
		// Redelivered here, before the rest of its key, with its metadata
		// as received.
		it.m.Metadata = unflatten(it.received)
		it.failures++
		if d := max(r.cfg.NackBackoff.Delay(it.failures), r.opts.RedeliveryDelay); d > 0 {
			it.notBefore = time.Now().Add(d)
		}
		r.waiting.again(it)
		r.ready.broadcast()
		r.mu.Unlock()
	default:
		// Handed back to the broker, and with it every later message of
		// its key held here, so the broker redelivers the key in order.
		ids := []driver.AckID{it.m.AckID}
		k := it.m.OrderingKey
		if k != "" {
			for _, w := range r.waiting.dropKey(k) {
				ids = append(ids, w.m.AckID)
			}
		}
		delay := max(r.cfg.NackBackoff.Delay(r.failed(it.m)), r.opts.RedeliveryDelay)
		if r.stopping {
			// A handler that outlived Stop hands its message back at once,
			// on every broker: another member (or the next start) takes it
			// without waiting out a backoff meant for a running consumer.
			delay = 0
		}
		if delay > 0 && !r.opts.DelaysNacks {
			// Held here until the delay is over; the rest of the group's
			// messages go on meanwhile.
			d := &deferredNack{key: k, ids: ids}
			if k != "" {
				r.deferred[k] = d
			}
			r.pending[d] = struct{}{}
			r.deferredWG.Add(1)
			d.timer = time.AfterFunc(delay, func() { r.nackDeferred(d) })
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		r.nack(ids, delay)
		r.mu.Lock()
		r.release(len(ids))
		r.mu.Unlock()
	}
}

// failed counts a failed delivery of m and returns how many there have
// been: the broker's count when it keeps one, else this receiver's. r.mu
// is held.
func (r *Receiver) failed(m *driver.Message) int {
	if len(r.failures) >= maxFailureCounts {
		clear(r.failures) // bounded memory; counts restart
	}
	n := max(m.Attempt, r.failures[m.ID]+1)
	r.failures[m.ID] = n
	return n
}

// nackDeferred hands back a held nack once its delay is over.
func (r *Receiver) nackDeferred(d *deferredNack) {
	defer r.deferredWG.Done()
	r.mu.Lock()
	if _, ok := r.pending[d]; !ok {
		r.mu.Unlock() // Stop took it
		return
	}
	delete(r.pending, d)
	if r.deferred[d.key] == d {
		delete(r.deferred, d.key)
	}
	ids := d.ids
	r.mu.Unlock()
	r.nack(ids, 0)
	r.mu.Lock()
	r.release(len(ids))
	r.mu.Unlock()
}

func (r *Receiver) nack(ids []driver.AckID, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.sub.SendNacks(ctx, ids, delay); err != nil {
		r.cfg.Logger.Warn("messaging: handing nacked messages back failed; they come back after the broker's timeout",
			"subscription", r.cfg.Where, "count", len(ids), "error", err)
	}
}

// flush sends the acks gathered so far, AckBatch at a time.
func (r *Receiver) flush() {
	r.mu.Lock()
	all := r.acks
	r.acks, r.spare = r.spare[:0], nil
	r.mu.Unlock()
	for ids := all; len(ids) > 0; {
		n := min(len(ids), r.opts.AckBatch)
		r.send(ids[:n])
		ids = ids[n:]
	}
	clear(all)
	r.mu.Lock()
	if r.spare == nil {
		r.spare = all[:0]
	}
	r.mu.Unlock()
}

// send sends one batch of acks.
func (r *Receiver) send(ids []driver.AckID) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.sub.SendAcks(ctx, ids); err != nil {
		r.cfg.Logger.Warn("messaging: sending acks failed; those messages may be delivered again",
			"subscription", r.cfg.Where, "count", len(ids), "error", err)
	}
}

// release forgets n settled messages, waking the fetcher when that makes
// room. r.mu is held.
func (r *Receiver) release(n int) {
	r.held -= n
	if r.held <= r.roomLimit() {
		r.room.broadcast()
	}
}

// flushSoon asks the flusher to send the acks gathered so far, without
// making a worker wait for the broker's answer. r.mu is held.
func (r *Receiver) flushSoon() {
	select {
	case r.flushNow <- struct{}{}:
	default: // already asked
	}
}

// flusher sends the acks when asked (a full batch, or the workers ran out
// of work), and those that waited AckFlush: a slow handler must not hold
// back the acks of the messages before it.
func (r *Receiver) flusher(d time.Duration) {
	defer r.helpers.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-r.helpersStop:
			return
		case <-r.flushNow:
		case <-t.C:
		}
		r.flush()
	}
}

// every calls f every d until the receiver stops.
func (r *Receiver) every(d time.Duration, f func()) {
	defer r.helpers.Done()
	t := time.NewTicker(max(d, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.helpersStop:
			return
		case <-t.C:
			f()
		}
	}
}

// extendLeases extends the lease of every message held, waiting or
// running, so that no other member takes it meanwhile.
func (r *Receiver) extendLeases(timeout time.Duration) {
	r.mu.Lock()
	ids := make([]driver.AckID, 0, r.waiting.n+len(r.running))
	r.waiting.each(func(it *item) { ids = append(ids, it.m.AckID) })
	for it := range r.running {
		ids = append(ids, it.m.AckID)
	}
	for d := range r.pending {
		ids = append(ids, d.ids...)
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := r.sub.ExtendAcks(ctx, ids); err != nil {
		r.cfg.Logger.Warn("messaging: extending the lease of held messages failed; another member may take them",
			"subscription", r.cfg.Where, "count", len(ids), "error", err)
	}
}

// MarkStopping makes the receiver take no more messages and hand back at
// once, without a nack backoff, what handlers nack from now on. Stop does it
// first; a caller that tells handlers the subscription is stopping (so that
// they return) calls it before, so that what they hand back then is not
// held back by the broker for a backoff meant for a running consumer.
func (r *Receiver) MarkStopping() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopping = true
	r.ready.broadcast()
	r.room.broadcast()
	r.flowing.broadcast()
}

// Stop stops taking messages, waits until ctx ends for running handlers,
// hands back what was received and not handled, sends the acks, and closes
// the driver's subscription. Handlers still running when ctx ends are
// abandoned (Config.OnDeadline runs); their messages go back to the broker
// with the subscription's Close. Stop is idempotent.
func (r *Receiver) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.MarkStopping()
		r.stopFetch()
		workersDone := make(chan struct{})
		go func() { r.workers.Wait(); close(workersDone) }()
		if !waitUntil(ctx, r.fetcherDone) {
			// The driver's ReceiveBatch ignores its context: give up on it.
			r.stopErr = fmt.Errorf("messaging: subscription %s: the driver's ReceiveBatch did not return after its context was cancelled: %w",
				r.cfg.Where, ctx.Err())
		}
		if !waitUntil(ctx, workersDone) {
			if r.cfg.OnDeadline != nil {
				r.cfg.OnDeadline()
			}
			r.stopErr = errors.Join(r.stopErr, fmt.Errorf("messaging: subscription %s: handlers still running at the shutdown deadline; their messages will be redelivered: %w",
				r.cfg.Where, ctx.Err()))
		}
		// What is left (stopping the flusher and lease extension, handing
		// back what was not handled, the last acks, then the driver's
		// Close, in that order: acks on a closed subscription fail) runs on
		// a goroutine. Against a broker that does not answer, a flush or a
		// lease extension in progress waits for its own timeout: Stop
		// returns at ctx's end, and the rest finishes when the broker
		// answers or those timeouts end.
		close(r.helpersStop)
		closed := make(chan struct{})
		var closeErr error
		go func() {
			defer close(closed)
			r.helpers.Wait()
			r.mu.Lock()
			waiting := r.waiting.all()
			var ids []driver.AckID
			for d := range r.pending { // held nacks go back now, not after their delay
				if d.timer.Stop() {
					r.deferredWG.Done()
				}
				ids = append(ids, d.ids...)
			}
			clear(r.pending)
			clear(r.deferred)
			r.mu.Unlock()
			deferredDone := make(chan struct{})
			go func() { r.deferredWG.Wait(); close(deferredDone) }()
			waitUntil(ctx, deferredDone) // a held nack being sent finishes before Close
			if r.canNak {
				for _, it := range waiting {
					ids = append(ids, it.m.AckID)
				}
			}
			if len(ids) > 0 {
				r.nack(ids, 0)
			}
			r.flush()
			closeErr = r.sub.Close()
		}()
		if !waitUntil(ctx, closed) {
			r.stopErr = errors.Join(r.stopErr, fmt.Errorf("messaging: subscription %s: settling what it held and the driver's Close did not finish before the deadline (what was not settled is delivered again): %w", r.cfg.Where, ctx.Err()))
		} else if closeErr != nil {
			r.stopErr = errors.Join(r.stopErr, fmt.Errorf("messaging: close subscription %s: %w", r.cfg.Where, closeErr))
		}
	})
	return r.stopErr
}

// LateGrace is how long a wait bounded by a context still takes a step
// that ends just after the context did. With a context that ended before
// the call (a shutdown signal's, as services often pass to Close), a step
// that takes microseconds (closing an idle subscription) would otherwise
// be reported as not returning by the deadline.
const LateGrace = 5 * time.Millisecond

// waitUntil waits for done until ctx ends (and LateGrace more) and reports
// whether done came.
func waitUntil(ctx context.Context, done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
	}
	select {
	case <-done:
		return true
	case <-ctx.Done():
		late := time.NewTimer(LateGrace)
		defer late.Stop()
		select {
		case <-done:
			return true
		case <-late.C:
			return false
		}
	}
}
