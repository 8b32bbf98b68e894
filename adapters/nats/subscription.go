package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/adapters/internal/repeated"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// subscription is one member of a group: it pulls from the group's durable
// consumer. Pull requests for up to batch_size messages each stay open for
// up to fetch_wait; the next is sent when half of the open ones' messages
// have come, so the server always has one to fill. ReceiveBatch returns
// what has arrived so far, so a backlog comes in full batches and a trickle
// with no added latency. Replies to every pull come to one inbox
// subscription that lives as long as the subscription: a message the
// server sent to a pull is never dropped on the way because the pull was
// given up.
type subscription struct {
	t            *Transport
	topic, group string
	inbox        string // pulls are answered on inbox.<pull number>
	sub          *nats.Subscription
	repeated     *repeated.Reporter // logs messages that carry a header more than once

	mu     sync.Mutex
	next   string // the consumer's next-message API subject
	pulls  pulls
	held   map[*nats.Msg]struct{}
	closed bool
}

// pulls are the open pull requests, oldest first. The server fills them in
// that order, and a stream message carries its own subject, not the pull's,
// so each message is counted against the oldest.
type pulls struct {
	last   uint64 // number of the newest pull
	open   []pull
	newest time.Time // when the newest pull sent ends at the server
}

type pull struct {
	n       uint64
	left    int       // messages it may still bring
	expires time.Time // when the server ends it
}

// left is how many messages the open pulls may still bring, forgetting
// those whose answer is overdue.
func (p *pulls) left(now time.Time) int {
	n := 0
	keep := p.open[:0]
	for _, q := range p.open {
		if q.left > 0 && now.Before(q.expires.Add(time.Second)) {
			keep = append(keep, q)
			n += q.left
		}
	}
	p.open = keep
	return n
}

func (p *pulls) add(max int, wait time.Duration) uint64 {
	p.last++
	p.newest = time.Now().Add(wait)
	p.open = append(p.open, pull{n: p.last, left: max, expires: p.newest})
	return p.last
}

func (p *pulls) got() {
	for i := range p.open {
		if p.open[i].left > 0 {
			p.open[i].left--
			return
		}
	}
}

// end forgets the pull whose reply subject is subject.
func (p *pulls) end(subject string) {
	for i, q := range p.open {
		if strings.HasSuffix(subject, "."+strconv.FormatUint(q.n, 10)) {
			p.open = append(p.open[:i], p.open[i+1:]...)
			return
		}
	}
}

// until is when the newest open pull's answer is overdue.
func (p *pulls) until() time.Time {
	if len(p.open) == 0 {
		return time.Now()
	}
	return p.open[len(p.open)-1].expires.Add(time.Second)
}

func newSubscription(t *Transport, topic, group string, c jetstream.Consumer) (*subscription, error) {
	s := &subscription{t: t, topic: topic, group: group, inbox: t.nc.NewInbox(), held: map[*nats.Msg]struct{}{}, repeated: newRepeated()}
	s.setConsumer(c)
	var err error
	if s.sub, err = t.nc.SubscribeSync(s.inbox + ".*"); err != nil {
		return nil, fmt.Errorf("nats: subscribe to the pull inbox for %s: %w", sdk.QuoteName(topic), err)
	}
	return s, nil
}

func (s *subscription) setConsumer(c jetstream.Consumer) {
	info := c.CachedInfo()
	s.mu.Lock()
	s.next = "$JS.API.CONSUMER.MSG.NEXT." + info.Stream + "." + info.Name
	s.pulls.open = nil
	s.mu.Unlock()
}

// closedOr returns err, or driver.ErrClosed when the subscription or its
// connection was closed: no retry can help then.
func (s *subscription) closedOr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("nats: subscription to %s for group %s %w (%v)", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), driver.ErrClosed, err)
	}
	return err
}

// ReceiveBatch opens a pull when none is open, waits for its first message
// and returns it with every other that has arrived.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if err := s.pullMore(max); err != nil {
		return nil, s.closedOr(err)
	}
	s.mu.Lock()
	until := s.pulls.until()
	s.mu.Unlock()
	wctx, cancel := context.WithDeadline(ctx, until)
	m, err := s.sub.NextMsgWithContext(wctx)
	cancel()
	switch {
	case err == nil:
		// A message taken is returned even when ctx ended meanwhile:
		// dropped here it would stay with this member, unhandled, until
		// ack_wait.
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil // the pulls' answers are overdue; the next call forgets them and pulls again
	case err != nil:
		return nil, s.closedOr(fmt.Errorf("nats: pull from %s for group %s on %s: %w", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), s.t.s.where(), err))
	}
	var out []*driver.Message
	for {
		dm, err := s.take(ctx, m)
		if err != nil {
			return out, err
		}
		if dm != nil {
			out = append(out, dm)
		}
		if n, _, _ := s.sub.Pending(); n == 0 || len(out) >= max {
			if ctx.Err() != nil {
				return out, nil // stopping: no new pull
			}
			return out, s.pullMore(max)
		}
		if m, err = s.sub.NextMsg(0); err != nil {
			return out, nil
		}
	}
}

// pullMore sends a pull for max messages when the open ones may bring no
// more than half that many.
func (s *subscription) pullMore(max int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pulls.left(time.Now()) > max/2 {
		return nil
	}
	n := s.pulls.add(max, s.t.s.FetchWait)
	req := fmt.Sprintf(`{"batch":%d,"expires":%d}`, max, s.t.s.FetchWait.Nanoseconds())
	if err := s.t.nc.PublishRequest(s.next, s.inbox+"."+strconv.FormatUint(n, 10), []byte(req)); err != nil {
		s.pulls.end(s.inbox + "." + strconv.FormatUint(n, 10))
		return fmt.Errorf("nats: pull from %s for group %s on %s: %w", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), s.t.s.where(), err)
	}
	return nil
}

// take returns the message m carries, or nil for a status: the pull ended
// (408 at its expiry, 409 for a consumer deleted or a leader change) or
// could not be served (503: the consumer or JetStream is gone).
func (s *subscription) take(ctx context.Context, m *nats.Msg) (*driver.Message, error) {
	status := m.Header.Get("Status")
	if status == "" || len(m.Data) > 0 {
		md, err := m.Metadata()
		if err != nil {
			return nil, nil // not a stream message: nothing to deliver or ack
		}
		dm, repeats := decode(md.Stream, md.Sequence.Stream, m.Header, m.Data)
		if repeats {
			s.repeated.Report(m.Subject, s.group, dm.ID, repeatedHeaders(m.Header))
		}
		dm.AckID, dm.Attempt = m, int(md.NumDelivered)
		s.mu.Lock()
		s.held[m] = struct{}{}
		s.pulls.got()
		s.mu.Unlock()
		return dm, nil
	}
	if status == "100" {
		return nil, nil // a heartbeat
	}
	s.mu.Lock()
	s.pulls.end(m.Subject)
	s.mu.Unlock()
	switch desc := m.Header.Get("Description"); {
	case status == "503", status == "409" && strings.Contains(desc, "Deleted"):
		s.t.forget(s.topic)
		c, err := s.t.consumer(ctx, s.topic, s.group)
		if err != nil {
			return nil, fmt.Errorf("nats: the consumer of group %s on %s is gone (%s %s) and creating it again failed: %w", sdk.QuoteName(s.group), sdk.QuoteName(s.topic), status, desc, err)
		}
		slog.Default().Warn("nats: consumer was missing; created it again", "topic", s.topic, "group", s.group)
		s.setConsumer(c)
	case status == "409" && strings.Contains(desc, "MaxWaiting"):
		return nil, fmt.Errorf("nats: pull from %s for group %s refused: %s %s (too many members pulling at once; raise the consumer's max_waiting)", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), status, desc)
	}
	return nil, nil
}

var (
	ack = []byte("+ACK")
	nak = []byte("-NAK")
	wpi = []byte("+WPI")
)

// settle sends body to each message's ack subject, stops holding them, and
// flushes, so that the server has them all by the time it returns.
func (s *subscription) settle(ctx context.Context, what string, ids []driver.AckID, body []byte) error {
	var first error
	s.mu.Lock()
	for _, id := range ids {
		m := id.(*nats.Msg)
		delete(s.held, m)
		if err := s.t.nc.Publish(m.Reply, body); err != nil && first == nil {
			first = err
		}
	}
	s.mu.Unlock()
	if first == nil {
		first = s.t.nc.FlushWithContext(ctx)
	}
	if first != nil {
		return fmt.Errorf("nats: %s %d messages of %s for group %s: %w", what, len(ids), sdk.QuoteName(s.topic), sdk.QuoteName(s.group), first)
	}
	return nil
}

// SendAcks acks each message and flushes the connection.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	return s.settle(ctx, "ack", ids, ack)
}

// CanNack: a NAK hands a message back to the consumer.
func (s *subscription) CanNack() bool { return true }

// SendNacks NAKs each message, with the delay when there is one.
func (s *subscription) SendNacks(ctx context.Context, ids []driver.AckID, delay time.Duration) error {
	body := nak
	if delay > 0 {
		body = fmt.Appendf(nil, `-NAK {"delay":%d}`, delay.Nanoseconds())
	}
	return s.settle(ctx, "nack", ids, body)
}

// ExtendAcks tells the server the messages are still being worked on,
// which restarts their ack_wait.
func (s *subscription) ExtendAcks(ctx context.Context, ids []driver.AckID) error {
	for _, id := range ids {
		if err := s.t.nc.Publish(id.(*nats.Msg).Reply, wpi); err != nil {
			return fmt.Errorf("nats: extend ack_wait on %s for group %s: %w", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), err)
		}
	}
	return s.t.nc.FlushWithContext(ctx)
}

// Options: batch_size per pull, ack_wait as the lease the engine keeps
// alive, and a NAK's delay kept by the server.
func (s *subscription) Options() driver.Options {
	return driver.Options{MaxBatch: s.t.s.BatchSize, Lease: s.t.s.AckWait, DelaysNacks: true}
}

// Close stops pulling and hands back what the subscription holds: the
// messages it returned and nobody settled, those that arrived and were not
// returned, and those the open pull still brings. The server would send a
// NAKed message straight back to the open pull, so the NAKs go out when
// that pull ends (within fetch_wait), from a goroutine the transport waits
// for when it closes; Close itself does not wait.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	back := make([]driver.AckID, 0, len(s.held))
	for m := range s.held {
		back = append(back, m)
	}
	// Read until the pulls' answers are overdue: how many messages they
	// may still bring is an estimate (redeliveries of what the engine
	// NAKed before Close come to them too), and a message left unread
	// would stay with this member until ack_wait.
	until := s.pulls.newest.Add(time.Second)
	s.mu.Unlock()
	s.t.subs.Remove(s)
	s.t.linger(func() {
		defer s.sub.Unsubscribe()
		for {
			ctx, cancel := context.WithDeadline(context.Background(), until)
			stop := context.AfterFunc(s.t.closing, cancel)
			m, err := s.sub.NextMsgWithContext(ctx)
			stop()
			cancel()
			if err != nil {
				break
			}
			if dm, _ := s.take(context.Background(), m); dm != nil {
				back = append(back, dm.AckID)
			}
		}
		if len(back) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.settle(ctx, "hand back", back, nak); err != nil {
				slog.Default().Warn("nats: handing back unsettled messages on close failed; they come back after ack_wait", "topic", s.topic, "error", err)
			}
		}
	})
	return nil
}

// replySubscription reads a private reply subject on core NATS: no stream,
// nothing to ack, nothing redelivered by the server.
type replySubscription struct {
	t        *Transport
	sub      *nats.Subscription
	n        atomic.Uint64 // numbers replies that arrive without an id
	repeated *repeated.Reporter
}

func (r *replySubscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	wctx, cancel := context.WithTimeout(ctx, r.t.s.FetchWait)
	m, err := r.sub.NextMsgWithContext(wctx)
	cancel()
	switch {
	case err == nil: // taken: returned even when ctx ended meanwhile
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("nats: read reply subject %q: %w", r.sub.Subject, err)
	}
	out := []*driver.Message{r.decode(m)}
	for len(out) < max {
		if n, _, _ := r.sub.Pending(); n == 0 {
			break
		}
		if m, err = r.sub.NextMsg(0); err != nil {
			break
		}
		out = append(out, r.decode(m))
	}
	return out, nil
}

// newRepeated is the Reporter of a subscription's messages that carry a
// header more than once.
func newRepeated() *repeated.Reporter {
	return repeated.New(slog.Default(), "nats", "every value, joined with commas as HTTP reads a repeated field")
}

func (r *replySubscription) decode(m *nats.Msg) *driver.Message {
	n := r.n.Add(1)
	dm, repeats := decode(m.Subject, n, m.Header, m.Data)
	if repeats {
		r.repeated.Report(m.Subject, "", dm.ID, repeatedHeaders(m.Header))
	}
	dm.AckID = strconv.FormatUint(n, 10)
	return dm
}

func (r *replySubscription) SendAcks(context.Context, []driver.AckID) error { return nil }
func (r *replySubscription) CanNack() bool                                  { return false }
func (r *replySubscription) SendNacks(context.Context, []driver.AckID, time.Duration) error {
	return errors.New("nats: SendNacks called on a reply subscription, which cannot nack")
}
func (r *replySubscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }
func (r *replySubscription) Options() driver.Options                          { return driver.Options{} }

func (r *replySubscription) Close() error {
	defer r.t.subs.Remove(r)
	if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("nats: unsubscribe from %q: %w", r.sub.Subject, err)
	}
	return nil
}

var (
	_ driver.Subscription = (*subscription)(nil)
	_ driver.Subscription = (*replySubscription)(nil)
)
