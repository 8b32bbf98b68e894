package awsq

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/sdk"
)

// Subscriber consumes SQS queues: long polling for up to ten messages per
// call, acks deleted in batches, nacks made visible again (after
// nack_delay), and the visibility of a message extended while its handler
// runs. On a FIFO queue the messages of one group are handed out one at a
// time, each after the previous one was acked.
type Subscriber struct {
	SQS    *sqs.Client
	S      Settings
	Logger *slog.Logger
	// Queue resolves the topic to the queue this subscriber reads.
	Queue func(ctx context.Context, topic string) (Queue, error)
	// OnClose runs after the subscriber stopped (a reply queue deletes itself).
	OnClose func() error

	once      sync.Once
	closing   chan struct{}
	wg        sync.WaitGroup // receivers and message trackers
	acks      *acker
	closeOnce sync.Once
	closeErr  error
}

func (s *Subscriber) init() {
	s.once.Do(func() {
		s.closing = make(chan struct{})
		s.acks = newAcker(s)
	})
}

// Subscribe starts a receiver on the topic's queue. Each call adds one
// receiver (one long poll at a time), so concurrency N polls N at a time.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.init()
	select {
	case <-s.closing:
		return nil, fmt.Errorf("%s: subscribe to %q: subscriber %w", s.S.Driver, topic, sdk.ErrClosed)
	default:
	}
	q, err := s.Queue(ctx, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.receive(ctx, q, out)
	}()
	return out, nil
}

func (s *Subscriber) receive(ctx context.Context, q Queue, out chan<- *message.Message) {
	backoff := 100 * time.Millisecond
	var trackers sync.WaitGroup
	defer trackers.Wait()
	for ctx.Err() == nil {
		resp, err := s.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(q.URL),
			MaxNumberOfMessages:         MaxBatch,
			WaitTimeSeconds:             int32(s.S.Wait / time.Second),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId},
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.Logger.Warn(s.S.Driver+": receive failed; retrying", "queue", q.Name, "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if !s.handBatch(ctx, q, resp.Messages, out, &trackers) {
			return
		}
	}
}

// received is a message of a batch and the handler's verdict on it.
type received struct {
	wm      *message.Message
	group   string
	verdict chan bool // true: acked
}

// handBatch gives a batch's messages to the handlers one by one. Every
// message is tracked from the moment it was received, so those waiting for
// their turn stay invisible too. On a FIFO queue each message waits for the
// previous one's verdict, and after a nack the group's later messages go
// back as well, so the group is redelivered in order. It returns false when
// the subscription stopped; the trackers then release what was not handled.
func (s *Subscriber) handBatch(ctx context.Context, q Queue, msgs []types.Message, out chan<- *message.Message, trackers *sync.WaitGroup) bool {
	batch := make([]received, len(msgs))
	for i, m := range msgs {
		attrs := make(map[string]string, len(m.MessageAttributes))
		for k, v := range m.MessageAttributes {
			if v.StringValue != nil {
				attrs[k] = *v.StringValue
			}
		}
		wm := Decode(aws.ToString(m.Body), attrs, aws.ToString(m.MessageId))
		wm.SetContext(ctx)
		batch[i] = received{wm: wm, group: m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)], verdict: make(chan bool, 1)}
		trackers.Add(1)
		go func() {
			defer trackers.Done()
			batch[i].verdict <- s.track(ctx, q, m, wm)
		}()
	}
	nacked := map[string]bool{}
	for _, r := range batch {
		if s.S.FIFO && nacked[r.group] {
			r.wm.Nack()
			continue
		}
		select {
		case out <- r.wm:
		case <-ctx.Done():
			return false
		}
		if s.S.FIFO {
			select {
			case acked := <-r.verdict:
				if !acked {
					nacked[r.group] = true
				}
			case <-ctx.Done():
				return false
			}
		}
	}
	return true
}

// track waits for the handler's verdict, extending the message's visibility
// every half visibility timeout while it runs.
func (s *Subscriber) track(ctx context.Context, q Queue, m types.Message, wm *message.Message) bool {
	extend := time.NewTicker(s.S.Visibility / 2)
	defer extend.Stop()
	for {
		select {
		case <-wm.Acked():
			s.acks.add(q, aws.ToString(m.ReceiptHandle))
			return true
		case <-wm.Nacked():
			s.release(q, m, s.S.NackDelay)
			return false
		case <-extend.C:
			s.changeVisibility(q, m, s.S.Visibility, "extend the visibility of a message still being handled")
		case <-ctx.Done():
			select {
			case <-wm.Acked(): // acked just before the stop: keep the ack
				s.acks.add(q, aws.ToString(m.ReceiptHandle))
				return true
			default:
			}
			s.release(q, m, 0) // back to the queue now, not after the visibility timeout
			return false
		}
	}
}

func (s *Subscriber) release(q Queue, m types.Message, after time.Duration) {
	s.changeVisibility(q, m, after, "make a message visible again")
}

func (s *Subscriber) changeVisibility(q Queue, m types.Message, d time.Duration, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(q.URL),
		ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: int32(d / time.Second)}); err != nil {
		s.Logger.Warn(s.S.Driver+": could not "+what+"; the visibility timeout will", "queue", q.Name, "error", err)
	}
}

// Close stops the receivers, releases messages not acked yet, deletes what
// was acked, and runs OnClose.
func (s *Subscriber) Close() error {
	s.init()
	s.closeOnce.Do(func() {
		close(s.closing)
		s.wg.Wait()
		s.acks.close()
		if s.OnClose != nil {
			s.closeErr = s.OnClose()
		}
	})
	return s.closeErr
}

// acker deletes acked messages in batches of up to ten per queue, at most
// ack_flush_interval after the ack.
type acker struct {
	s    *Subscriber
	in   chan ackReq
	done chan struct{}
}

type ackReq struct {
	q       Queue
	receipt string
}

func newAcker(s *Subscriber) *acker {
	a := &acker{s: s, in: make(chan ackReq, 64), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *acker) add(q Queue, receipt string) { a.in <- ackReq{q, receipt} }

func (a *acker) close() {
	close(a.in)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	pending := map[string][]ackReq{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func(url string) {
		batch := pending[url]
		delete(pending, url)
		if len(batch) > 0 {
			a.delete(batch)
		}
	}
	for {
		select {
		case r, ok := <-a.in:
			if !ok {
				for url := range pending {
					flush(url)
				}
				return
			}
			pending[r.q.URL] = append(pending[r.q.URL], r)
			if len(pending[r.q.URL]) == MaxBatch {
				flush(r.q.URL)
			}
			if !armed {
				timer.Reset(a.s.S.AckFlush)
				armed = true
			}
		case <-timer.C:
			armed = false
			for url := range pending {
				flush(url)
			}
		}
	}
}

func (a *acker) delete(batch []ackReq) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
	for i, r := range batch {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(BatchIDs[i]), ReceiptHandle: aws.String(r.receipt)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.s.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(batch[0].q.URL), Entries: entries})
	var ok []string
	failed := map[string]string{}
	if out != nil {
		for _, e := range out.Successful {
			ok = append(ok, aws.ToString(e.Id))
		}
		for _, e := range out.Failed {
			failed[aws.ToString(e.Id)] = aws.ToString(e.Code) + ": " + aws.ToString(e.Message)
		}
	}
	for i, e := range BatchResult(len(batch), err, ok, failed) {
		if e != nil {
			a.s.Logger.Warn(a.s.S.Driver+": could not delete an acked message; it will be redelivered after its visibility timeout",
				"queue", batch[i].q.Name, "error", e)
		}
	}
}

// Subscribers are a transport's open subscribers, which its Close closes.
// The zero value is ready.
type Subscribers struct {
	mu     sync.Mutex
	open   map[*Subscriber]struct{}
	closed bool
}

// Add registers s, arranging for it to leave the set when it closes (after
// which onClose, when not nil, runs). It fails once CloseAll has run.
func (r *Subscribers) Add(s *Subscriber, onClose func() error) (*Subscriber, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("%s: transport %w", s.S.Driver, sdk.ErrClosed)
	}
	if r.open == nil {
		r.open = map[*Subscriber]struct{}{}
	}
	s.OnClose = func() error {
		r.mu.Lock()
		delete(r.open, s)
		r.mu.Unlock()
		if onClose != nil {
			return onClose()
		}
		return nil
	}
	r.open[s] = struct{}{}
	return s, nil
}

// CloseAll closes every open subscriber and refuses new ones. It reports
// false when it had already run.
func (r *Subscribers) CloseAll() (errs []error, first bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, false
	}
	r.closed = true
	open := r.open
	r.open = nil
	r.mu.Unlock()
	for s := range open {
		errs = append(errs, s.Close())
	}
	return errs, true
}
