package awsq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// MaxBatch is the most entries one SendMessageBatch or PublishBatch takes.
const MaxBatch = 10

// SendFunc sends one batch (1..MaxBatch entries, at most MaxMessageBytes in
// all) to target and returns one error per entry, nil for those sent.
type SendFunc func(ctx context.Context, target string, batch []Encoded) []error

// Publisher batches messages per target (queue URL or topic ARN). A Publish
// call's messages are cut into full batches up front; each target has a few
// senders, and a sender that takes a partial batch adds whatever else is
// waiting (other callers' messages) up to a full one. So one big Publish
// costs one API call per ten messages, concurrent small ones share calls
// under load, and a lone message leaves at once.
type Publisher struct {
	S       Settings
	Resolve func(ctx context.Context, topic string) (target string, err error)
	Send    SendFunc

	mu       sync.RWMutex // held for reading by Publish, for writing by Close
	closed   bool
	targetMu sync.Mutex
	targets  map[string]*batcher
}

// Publish encodes every message (failing before any network call when one
// exceeds SQS's limits), then sends them and waits for every result. It
// gives up waiting when the first message's context is done or after
// publish_timeout.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("%s: publish to %q: %w", p.S.Driver, topic, sdk.ErrClosed)
	}
	if len(msgs) == 0 {
		return nil
	}
	entries := make([]Encoded, len(msgs))
	for i, m := range msgs {
		e, err := Encode(m)
		if err != nil {
			return fmt.Errorf("%s: publish to %q: %w", p.S.Driver, topic, err)
		}
		entries[i] = e
	}
	ctx, cancel := context.WithTimeout(msgs[0].Context(), p.S.PublishTimeout)
	defer cancel()
	target, err := p.Resolve(ctx, topic)
	if err != nil {
		return err
	}
	b := p.batcher(target)
	chunks := split(entries)
	results := make(chan []error, len(chunks)) // buffered: a late result never blocks a sender
	for i, c := range chunks {
		c.res = results
		select {
		case b.in <- c:
		case <-ctx.Done():
			return fmt.Errorf("%s: publish %d message(s) to %q: %d sent or on their way when the wait ended (%w; publish_timeout %v)",
				p.S.Driver, len(msgs), topic, i*MaxBatch, context.Cause(ctx), p.S.PublishTimeout)
		}
	}
	var failed []error
	for range chunks {
		select {
		case errs := <-results:
			for _, err := range errs {
				if err != nil {
					failed = append(failed, err)
				}
			}
		case <-ctx.Done():
			return fmt.Errorf("%s: publish %d message(s) to %q: no answer from the broker before the wait ended (%w; publish_timeout %v); some may have been sent",
				p.S.Driver, len(msgs), topic, context.Cause(ctx), p.S.PublishTimeout)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s: publish to %q: %d of %d message(s) failed: %w", p.S.Driver, topic, len(failed), len(msgs), errors.Join(failed...))
	}
	return nil
}

// split cuts entries into batches SQS and SNS accept: at most MaxBatch
// entries and MaxMessageBytes in all.
func split(entries []Encoded) []*pending {
	var out []*pending
	cur := &pending{}
	for _, e := range entries {
		size := e.Size()
		if len(cur.entries) == MaxBatch || (len(cur.entries) > 0 && cur.size+size > MaxMessageBytes) {
			out = append(out, cur)
			cur = &pending{}
		}
		cur.entries = append(cur.entries, e)
		cur.size += size
	}
	return append(out, cur)
}

func (p *Publisher) batcher(target string) *batcher {
	p.targetMu.Lock()
	defer p.targetMu.Unlock()
	if b, ok := p.targets[target]; ok {
		return b
	}
	if p.targets == nil {
		p.targets = map[string]*batcher{}
	}
	b := &batcher{target: target, send: p.Send, in: make(chan *pending, p.S.SendersPerTarget), stop: make(chan struct{}), timeout: p.S.PublishTimeout}
	for i := 0; i < p.S.SendersPerTarget; i++ {
		b.wg.Add(1)
		go b.run()
	}
	p.targets[target] = b
	return b
}

// Close waits for running Publish calls, sends what they left queued (a
// call that timed out may have), and stops the senders.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.targetMu.Lock()
	defer p.targetMu.Unlock()
	for _, b := range p.targets {
		close(b.stop)
		b.wg.Wait()
	}
	return nil
}

// pending is a batch, or part of one, from one Publish call.
type pending struct {
	entries []Encoded
	size    int
	res     chan<- []error
}

type batcher struct {
	target  string
	send    SendFunc
	in      chan *pending
	stop    chan struct{}
	wg      sync.WaitGroup
	timeout time.Duration
}

func (b *batcher) run() {
	defer b.wg.Done()
	var carry *pending
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.in:
			case <-b.stop:
				// Publish calls are over (Close holds the lock); send what a
				// timed-out call left behind rather than drop it.
				select {
				case first = <-b.in:
				default:
					return
				}
			}
		}
		batch := []*pending{first}
		n, size := len(first.entries), first.size
	fill:
		for n < MaxBatch {
			select {
			case p := <-b.in:
				if n+len(p.entries) > MaxBatch || size+p.size > MaxMessageBytes {
					carry = p
					break fill
				}
				batch = append(batch, p)
				n += len(p.entries)
				size += p.size
			default:
				break fill
			}
		}
		b.sendBatch(batch, n)
	}
}

func (b *batcher) sendBatch(batch []*pending, n int) {
	entries := make([]Encoded, 0, n)
	for _, p := range batch {
		entries = append(entries, p.entries...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	errs := b.send(ctx, b.target, entries)
	cancel()
	off := 0
	for _, p := range batch {
		res := errs[off : off+len(p.entries)]
		off += len(p.entries)
		p.res <- res
	}
}

// BatchIDs are the entry ids of a batch: "0".."9".
var BatchIDs = func() [MaxBatch]string {
	var ids [MaxBatch]string
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

// BatchResult maps a batch call's answer to one error per entry. An entry
// the answer does not mention counts as failed: a reply that accounts for
// fewer entries than were sent must not pass for success.
func BatchResult(n int, callErr error, ok []string, failed map[string]string) []error {
	errs := make([]error, n)
	if callErr != nil {
		for i := range errs {
			errs[i] = callErr
		}
		return errs
	}
	seen := make([]bool, n)
	for _, id := range ok {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
			seen[i] = true
		}
	}
	for id, reason := range failed {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
			seen[i] = true
			errs[i] = errors.New(reason)
		}
	}
	for i := range errs {
		if !seen[i] {
			errs[i] = fmt.Errorf("the batch reply accounts for %d of %d entries and not for entry %d; treating it as not sent", len(ok)+len(failed), n, i)
		}
	}
	return errs
}
