package awsq

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// MaxBatch is the most entries one SendMessageBatch or PublishBatch takes.
const MaxBatch = 10

// SendFunc sends one batch (1..MaxBatch entries, at most MaxMessageBytes in
// all) to target and returns one error per entry, nil for those sent.
type SendFunc func(ctx context.Context, target string, batch []Encoded) []error

// Sender is what the sqs and sns transports' SendBatch does: encode, resolve
// the target (queue URL or topic ARN), and send in batches SQS and SNS take.
// The engine coalesces concurrent publishes into calls of up to MaxBatch
// (SendOptions), so one big publish costs one call per ten messages and
// concurrent small ones share calls under load.
type Sender struct {
	S       Settings
	Resolve func(ctx context.Context, topic string) (target string, err error)
	Send    SendFunc
	// Forget, when set, drops what Resolve knows of topic's target, which
	// a call found gone (deleted under the transport): the messages it
	// refused are then resolved, and sent, once more.
	Forget func(ctx context.Context, topic string) error
}

// SendOptions: batches of ten, coalesced and filled (SQS and SNS bill per
// call), senders calls per topic at once. A standard queue or topic keeps
// no order, so one large publish's calls run at once; a FIFO one's go in
// order.
func (p *Sender) SendOptions() driver.SendOptions {
	return driver.SendOptions{MaxMessages: MaxBatch, Coalesce: true, FillCalls: true, Unordered: !p.S.FIFO,
		MaxInFlight: p.S.Senders, Timeout: p.S.PublishTimeout}
}

// SendBatch encodes every message (one that exceeds SQS's limits fails
// alone, before any network call), then sends the rest. Messages refused
// because the queue or topic is gone are sent once more after Forget, to
// the target Resolve then finds or creates.
func (p *Sender) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	errs := make(driver.BatchError, len(msgs))
	var entries []Encoded
	var index []int // entries[j] is msgs[index[j]]
	for i, m := range msgs {
		e, err := Encode(m)
		if err != nil {
			errs[i] = fmt.Errorf("%s: publish to %s: %w", p.S.Driver, sdk.QuoteName(topic), err)
			continue
		}
		entries = append(entries, e)
		index = append(index, i)
	}
	if gone := p.send(ctx, topic, entries, index, errs); len(gone) > 0 && p.Forget != nil {
		if err := p.Forget(ctx, topic); err != nil {
			for _, j := range gone {
				errs[index[j]] = err
			}
		} else {
			again := make([]Encoded, len(gone))
			againIndex := make([]int, len(gone))
			for k, j := range gone {
				again[k], againIndex[k] = entries[j], index[j]
			}
			p.send(ctx, topic, again, againIndex, errs)
		}
	}
	for _, err := range errs {
		if err != nil {
			return errs
		}
	}
	return nil
}

// send resolves topic's target and sends entries to it, entries[j] being
// message index[j], setting errs[index[j]] to its outcome. It returns the
// positions in entries of those refused because the target is gone.
func (p *Sender) send(ctx context.Context, topic string, entries []Encoded, index []int, errs []error) (gone []int) {
	if len(entries) == 0 {
		return nil
	}
	target, err := p.Resolve(ctx, topic)
	if err != nil {
		for _, i := range index {
			errs[i] = err
		}
		return nil
	}
	off := 0
	for _, c := range split(entries) {
		for j := range c.entries {
			errs[index[off+j]] = nil // sent, unless the answer says otherwise
		}
		for j, err := range p.Send(ctx, target, c.entries) {
			if err != nil {
				errs[index[off+j]] = fmt.Errorf("%s: publish to %s: %w", p.S.Driver, sdk.QuoteName(topic), err)
				if Gone(err) {
					gone = append(gone, off+j)
				}
			}
		}
		off += len(c.entries)
	}
	return gone
}

// chunk is a batch SQS and SNS accept.
type chunk struct {
	entries []Encoded
	size    int
}

// split cuts entries into batches SQS and SNS accept: at most MaxBatch
// entries and MaxMessageBytes in all.
func split(entries []Encoded) []chunk {
	var out []chunk
	var cur chunk
	for _, e := range entries {
		size := e.Size()
		if len(cur.entries) == MaxBatch || (len(cur.entries) > 0 && cur.size+size > MaxMessageBytes) {
			out = append(out, cur)
			cur = chunk{}
		}
		cur.entries = append(cur.entries, e)
		cur.size += size
	}
	return append(out, cur)
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
