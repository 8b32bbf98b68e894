package awsq

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/sdk/driver"
)

// Subscription reads one SQS queue: long polls for up to ten messages, acks
// deleted in batches, nacks made visible again (after the nack delay),
// and visibility extended while the engine holds a message. On a FIFO queue
// the message group is the ordering key the engine serialises on.
type Subscription struct {
	SQS    *sqs.Client
	S      Settings
	Logger *slog.Logger
	Q      Queue // the queue read at first; Queue() gives the one read now (Recover may replace it)
	// OnClose runs after the subscription stopped (a reply queue deletes
	// itself, the transport forgets it).
	OnClose func() error
	// Recover, when set, finds or creates the queue again (as subscribing
	// did) when a receive finds it gone, and returns it: the subscription
	// then reads the new queue instead of failing on the old URL for as
	// long as it runs.
	Recover func(ctx context.Context) (Queue, error)

	mu     sync.Mutex
	held   map[string]struct{} // receipt handles not yet settled
	closed bool
}

// ReceiveBatch long-polls the queue for up to min(max, 10) messages. It
// is safe to call concurrently.
func (s *Subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	closed, q := s.closed, s.Q
	s.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%s: subscription to %q %w", s.S.Driver, q.Name, driver.ErrClosed)
	}
	// The call is not cancelled with ctx at once: SQS takes the messages
	// it answers with, and an answer dropped with a cancelled request
	// leaves them invisible until their visibility timeout. A stopping
	// subscription gives the call receiveGrace to answer; an idle long
	// poll, which has taken nothing, is cancelled after that.
	callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	// A late timer only cancels a call that has returned: cancel is
	// idempotent, so nothing needs to stop it.
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(receiveGrace, cancel) })
	defer stop()
	resp, err := s.SQS.ReceiveMessage(callCtx, &sqs.ReceiveMessageInput{
		QueueUrl:              aws.String(q.URL),
		MaxNumberOfMessages:   int32(min(max, MaxBatch)),
		WaitTimeSeconds:       int32(s.S.WaitTime / time.Second),
		MessageAttributeNames: []string{"All"},
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId,
			types.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if Gone(err) && s.Recover != nil {
			return nil, s.recover(ctx, q, err)
		}
		return nil, fmt.Errorf("%s: receive from queue %q: %w", s.S.Driver, q.Name, err)
	}
	// Messages answered after ctx ended are returned all the same: the
	// engine hands them back when it stops.
	out := make([]*driver.Message, len(resp.Messages))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]struct{}{}
	}
	for i, m := range resp.Messages {
		attrs := Attributes(m.MessageAttributes)
		receipt := aws.ToString(m.ReceiptHandle)
		out[i] = Decode(aws.ToString(m.Body), attrs, aws.ToString(m.MessageId))
		out[i].AckID = receipt
		if s.S.FIFO {
			out[i].OrderingKey = m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
			out[i].Attempt, _ = strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		}
		s.held[receipt] = struct{}{}
	}
	return out, nil
}

// recover finds or creates the queue again after a receive from gone
// failed with err, saying so in the log, and reads the new one from then on.
func (s *Subscription) recover(ctx context.Context, gone Queue, err error) error {
	s.Logger.Warn(s.S.Driver+": the queue is gone (deleted, or an emulator restarted); finding or creating it again",
		"queue", gone.Name, "error", err)
	q, rerr := s.Recover(ctx)
	if rerr != nil {
		return fmt.Errorf("%s: queue %q is gone (%v), and finding or creating it again failed: %w", s.S.Driver, gone.Name, err, rerr)
	}
	s.mu.Lock()
	s.Q = q
	s.mu.Unlock()
	return nil
}

// Queue is the queue the subscription reads: Q, or the one Recover found.
func (s *Subscription) Queue() Queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Q
}

func (s *Subscription) settled(ids []driver.AckID) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	receipts := make([]string, len(ids))
	for i, id := range ids {
		receipts[i] = id.(string)
		delete(s.held, receipts[i])
	}
	return receipts
}

// SendAcks deletes the messages, ten per call.
func (s *Subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	q := s.Queue()
	errs := inBatches(s.settled(ids), func(batch []string) (ok []string, failed map[string]string, err error) {
		entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
		for i, r := range batch {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(BatchIDs[i]), ReceiptHandle: aws.String(r)}
		}
		out, err := s.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(q.URL), Entries: entries})
		if out == nil {
			return nil, nil, err
		}
		for _, e := range out.Successful {
			ok = append(ok, aws.ToString(e.Id))
		}
		return ok, failures(out.Failed), err
	})
	for i, e := range errs {
		errs[i] = fmt.Errorf("%s: delete an acked message from %q (it comes back after its visibility timeout): %w", s.S.Driver, q.Name, e)
	}
	return errors.Join(errs...)
}

// failures maps a batch reply's failed entries to their reasons, by id.
func failures(entries []types.BatchResultErrorEntry) map[string]string {
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		out[aws.ToString(e.Id)] = aws.ToString(e.Code) + ": " + aws.ToString(e.Message)
	}
	return out
}

// inBatches calls send for receipts ten at a time and returns an error for
// each receipt that failed (BatchResult).
func inBatches(receipts []string, send func(batch []string) (ok []string, failed map[string]string, err error)) []error {
	var errs []error
	for off := 0; off < len(receipts); off += MaxBatch {
		batch := receipts[off:min(off+MaxBatch, len(receipts))]
		ok, failed, err := send(batch)
		for _, e := range BatchResult(len(batch), err, ok, failed) {
			if e != nil {
				errs = append(errs, e)
			}
		}
	}
	return errs
}

// CanNack: a nacked message is made visible again.
func (s *Subscription) CanNack() bool { return true }

// SendNacks makes the messages visible again after delay, or after the
// nack_delay setting when it is longer. SQS counts visibility in whole
// seconds: a delay under one second waits one.
func (s *Subscription) SendNacks(ctx context.Context, ids []driver.AckID, delay time.Duration) error {
	if delay > 0 {
		delay = max(delay, time.Second)
	}
	return s.changeVisibility(ctx, s.settled(ids), max(delay, s.S.NackDelay))
}

// ExtendAcks keeps held messages invisible for another visibility timeout.
func (s *Subscription) ExtendAcks(ctx context.Context, ids []driver.AckID) error {
	receipts := make([]string, len(ids))
	for i, id := range ids {
		receipts[i] = id.(string)
	}
	return s.changeVisibility(ctx, receipts, s.S.VisibilityTimeout)
}

// changeVisibility hides the messages for d (whole seconds, rounded up),
// ten per ChangeMessageVisibilityBatch call.
func (s *Subscription) changeVisibility(ctx context.Context, receipts []string, d time.Duration) error {
	secs := int32((d + time.Second - 1) / time.Second)
	q := s.Queue()
	errs := inBatches(receipts, func(batch []string) (ok []string, failed map[string]string, err error) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
		for i, r := range batch {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(BatchIDs[i]), ReceiptHandle: aws.String(r), VisibilityTimeout: secs}
		}
		out, err := s.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(q.URL), Entries: entries})
		if out == nil {
			return nil, nil, err
		}
		for _, e := range out.Successful {
			ok = append(ok, aws.ToString(e.Id))
		}
		return ok, failures(out.Failed), err
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s: change the visibility of %d message(s) in %q: %w", s.S.Driver, len(errs), q.Name, errors.Join(errs...))
	}
	return nil
}

// Options: ten messages a batch, the receivers setting's long polls at
// once, deletes batched by ten within ack_flush_interval, and the
// visibility timeout as the lease. Concurrent polls keep a FIFO queue's
// group order: SQS hands out no message of a group while an earlier one
// of it is in flight.
func (s *Subscription) Options() driver.Options {
	return driver.Options{MaxBatch: MaxBatch, Receivers: s.S.Receivers, AckBatch: MaxBatch, AckFlush: s.S.AckFlushInterval, Lease: s.S.VisibilityTimeout, DelaysNacks: true}
}

// Close makes what it still holds visible again at once (not after the
// visibility timeout) and runs OnClose.
func (s *Subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	held := make([]string, 0, len(s.held))
	for r := range s.held {
		held = append(held, r)
	}
	s.held = nil
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if err := s.changeVisibility(ctx, held, 0); err != nil {
		s.Logger.Warn(s.S.Driver+": could not hand back held messages on close; the visibility timeout will", "queue", s.Queue().Name, "error", err)
	}
	if s.OnClose != nil {
		errs = append(errs, s.OnClose())
	}
	return errors.Join(errs...)
}

// receiveGrace is how long a receive in flight when its subscription stops
// may still answer.
const receiveGrace = 100 * time.Millisecond

// Subscriptions are a transport's open subscriptions (driver.Subscriptions),
// with each one's OnClose wired to leave the set.
type Subscriptions struct {
	driver.Subscriptions[*Subscription]
}

// Track registers s; onClose, when not nil, runs after s stops (a reply
// queue deletes itself). It fails once the transport is closed.
func (r *Subscriptions) Track(s *Subscription, onClose func() error) (*Subscription, error) {
	s.OnClose = func() error {
		r.Remove(s)
		if onClose != nil {
			return onClose()
		}
		return nil
	}
	if err := r.Add(s); err != nil {
		return nil, fmt.Errorf("%s: transport %w", s.S.Driver, err)
	}
	return s, nil
}

// Attributes maps received message attributes to metadata values: String
// and Number attributes (and their custom labels, String.x, Number.x) as
// their text; Binary ones, which non-Go producers may send, as the
// standard base64 of their bytes, so that none is dropped.
func Attributes(in map[string]types.MessageAttributeValue) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		switch {
		case v.StringValue != nil:
			out[k] = *v.StringValue
		case v.BinaryValue != nil:
			out[k] = base64.StdEncoding.EncodeToString(v.BinaryValue)
		}
	}
	return out
}
