package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/adapters/internal/cloudevents"
	"github.com/msgkit/msgkit/internal/lock"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// publisher publishes over a pool of long-lived channels in confirm mode.
//
// It replaces watermill-amqp's publisher, which waits for each message's
// confirm before sending the next (about 1.6k msg/s here); this one sends up
// to confirm_window messages and then collects their confirms, and
// concurrent publishes share the pool, so confirms from many callers are
// pipelined on each channel.
type publisher struct {
	s      settings
	conn   *connection
	pool   []*pubChannel
	next   atomic.Uint32
	closed atomic.Bool

	declared  sync.Map   // exchange name -> struct{}: declared on this broker already
	declareMu lock.Mutex // one declaration at a time, on a channel of its own
}

// pubChannel is one pooled channel, reopened after it breaks.
type pubChannel struct {
	mu     lock.Mutex // a publish waiting while another opens the channel gives up at its own deadline
	ch     *amqp.Channel
	closed *closeReason // ch's
}

// closeReason is why a channel closed, once it has: the broker's channel
// exception (a refused publish: 403 on an exchange the user may not write
// to), or nil for a close from this side or with the connection.
type closeReason struct {
	done chan struct{}
	err  *amqp.Error // set before done is closed
}

func watchClose(ch *amqp.Channel) *closeReason {
	r := &closeReason{done: make(chan struct{})}
	notify := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		r.err = <-notify // the reason, or nil when notify is closed without one
		close(r.done)
	}()
	return r
}

// lost returns why ch closed when the broker closed it for a reason that
// retrying does not fix, and fallback otherwise. The reason arrives just
// after the channel reports itself closed, so it waits for it briefly.
func (r *closeReason) lost(fallback error) error {
	select {
	case <-r.done:
	case <-time.After(time.Second):
		return fallback
	}
	if r.err != nil && refused(r.err.Code) {
		return r.err
	}
	return fallback // the connection went (a broker shutdown, 320): sent again after the reconnect
}

// refused reports whether a channel exception means the broker refuses
// the publish itself, which sending it again would not change.
func refused(code int) bool {
	switch code {
	case amqp.AccessRefused, amqp.PreconditionFailed, amqp.ContentTooLarge, amqp.NotAllowed, amqp.NotImplemented:
		return true
	}
	return false
}

func newPublisher(s settings, conn *connection) *publisher {
	p := &publisher{s: s, conn: conn, pool: make([]*pubChannel, s.PublishChannels)}
	for i := range p.pool {
		p.pool[i] = &pubChannel{}
	}
	return p
}

// get returns the pooled channel, opening it on the current connection
// when it is missing or closed.
func (p *publisher) get(ctx context.Context, pc *pubChannel) (*amqp.Channel, *closeReason, error) {
	if err := pc.mu.Lock(ctx); err != nil {
		return nil, nil, fmt.Errorf("rabbitmq: waiting for another publish to open the pooled channel: %w", err)
	}
	defer pc.mu.Unlock()
	if pc.ch != nil && !pc.ch.IsClosed() {
		return pc.ch, pc.closed, nil
	}
	ch, err := p.conn.channel(ctx, func(ch *amqp.Channel) error {
		if p.s.NoConfirms {
			return nil
		}
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("rabbitmq: enable publisher confirms: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	pc.ch, pc.closed = ch, watchClose(ch)
	return ch, pc.closed, nil
}

// send publishes msgs to topic and, with publisher confirms on (the
// default), returns only when the broker has confirmed every one. When the
// channel breaks part way, the messages confirmed so far count as sent and
// the rest fail with a retryable error: the engine sends them again after
// the reconnect (a message may then arrive twice, never zero times).
func (p *publisher) send(ctx context.Context, topic string, msgs []*driver.Message) error {
	if p.closed.Load() {
		return fmt.Errorf("rabbitmq: publish to %s: publisher %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	n := p.s.publishNames(topic)
	if err := p.s.checkNames(topic, n, false); err != nil {
		return err
	}
	if errs := checkHeaders(topic, msgs, p.s.WireFormat == "cloudevents"); errs != nil {
		return p.sendSome(ctx, topic, msgs, errs)
	}
	sent, err := p.publishOnce(ctx, n, msgs)
	if err == nil {
		return nil
	}
	if isAccessRefused(err) {
		err = fmt.Errorf("rabbitmq: publish to %s on %s: %s: %w", sdk.QuoteName(topic), p.s.where(), accessRefusedAdvice, err)
	} else {
		err = fmt.Errorf("rabbitmq: publish to %s on %s: %w", sdk.QuoteName(topic), p.s.where(), err)
	}
	if sent == 0 {
		return err
	}
	errs := make(driver.BatchError, len(msgs))
	for i := sent; i < len(msgs); i++ {
		errs[i] = err
	}
	return errs
}

// maxHeaderFrame is the most a message's properties and headers may take:
// one content header frame within RabbitMQ's default frame_max (131072),
// less the frame's own bytes. A larger one would make the broker close the
// connection (FRAME_ERROR), failing every publish on it.
const maxHeaderFrame = 131072 - 8

// checkHeaders returns, when some message's headers would not fit one
// frame, an error for each such message and nil for the others.
// With cloudEvents, a message that cannot be written as an event
// (cloudevents.Check) is refused too.
func checkHeaders(topic string, msgs []*driver.Message, cloudEvents bool) driver.BatchError {
	var errs driver.BatchError
	for i, m := range msgs {
		if id, ok := m.Metadata[watermillUUIDHeader]; ok && id != m.ID {
			if errs == nil {
				errs = make(driver.BatchError, len(msgs))
			}
			errs[i] = fmt.Errorf("rabbitmq: publish to %q: message %s: metadata key %q is reserved: the header carries the message id (watermill-amqp reads it there), and this one holds %q; set Message.ID instead",
				topic, m.ID, watermillUUIDHeader, id)
			continue
		}
		if cloudEvents {
			if err := cloudevents.Check(m, "cloudEvents:"); err != nil {
				if errs == nil {
					errs = make(driver.BatchError, len(msgs))
				}
				errs[i] = fmt.Errorf("rabbitmq: publish to %s: %w", sdk.QuoteName(topic), err)
				continue
			}
		}
		n, longKey := headerFrameSize(m, cloudEvents)
		if longKey != "" {
			if errs == nil {
				errs = make(driver.BatchError, len(msgs))
			}
			errs[i] = fmt.Errorf("rabbitmq: publish to %s: message %s: %w: metadata key %s is a header name, and AMQP carries at most %d bytes in one: use a shorter key",
				sdk.QuoteName(topic), m.ID, sdk.ErrMetadataTooLarge, sdk.QuoteName(longKey), maxName)
			continue
		}
		if n > maxHeaderFrame {
			if errs == nil {
				errs = make(driver.BatchError, len(msgs))
			}
			errs[i] = fmt.Errorf("rabbitmq: publish to %q: message %s: %w: its headers take about %d bytes, over the %d of one AMQP frame",
				topic, m.ID, sdk.ErrMetadataTooLarge, n, maxHeaderFrame)
		}
	}
	return errs
}

// sendSome publishes the messages errs has no error for, and reports errs
// with their outcome added.
func (p *publisher) sendSome(ctx context.Context, topic string, msgs []*driver.Message, errs driver.BatchError) error {
	var ok []*driver.Message
	var at []int
	for i, m := range msgs {
		if errs[i] == nil {
			ok, at = append(ok, m), append(at, i)
		}
	}
	if len(ok) == 0 {
		if len(msgs) == 1 {
			return errs[0]
		}
		return errs
	}
	err := p.send(ctx, topic, ok)
	var partial driver.BatchError
	for j, i := range at {
		switch {
		case errors.As(err, &partial):
			errs[i] = partial[j]
		case err != nil:
			errs[i] = err
		}
	}
	return errs
}

// errChannelLost marks a publish whose channel closed before confirming.
var errChannelLost = errors.New("channel closed before the broker confirmed")

// retryable reports whether err means the channel or connection went away
// (a broker restart, a reset socket) rather than the broker refusing the
// message: the unconfirmed messages are then sent again after a reconnect.
// errNacked is a basic.nack: the broker did not store the message. A
// quorum queue nacks while it has no leader (during a node loss) and a
// queue with x-overflow: reject-publish while it is full; both pass, and a
// message that was not stored can be sent again without a duplicate, so
// the engine retries it until the publish's deadline.
var errNacked = errors.New("the broker refused the message (basic.nack) and did not store it: a quorum queue without a leader, or a full queue with x-overflow: reject-publish, refuses until it recovers")

func retryable(err error) bool {
	var ae *amqp.Error
	var ne net.Error
	var missing *missingError
	switch {
	case errors.Is(err, errNacked):
		return true
	case errors.As(err, &missing):
		return false // declare: false, and the platform has not declared it
	case errors.Is(err, errChannelLost), errors.Is(err, amqp.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne):
		return true
	case errors.As(err, &ae):
		if refused(ae.Code) {
			return false // the same publish would be refused again
		}
		return ae.Recover || ae.Code == amqp.NotFound // NotFound: the exchange was deleted; declared again below
	}
	return false
}

// publishOnce publishes on one pooled channel, keeping at most
// confirm_window unconfirmed, and returns how many leading messages were
// confirmed.
func (p *publisher) publishOnce(ctx context.Context, n names, msgs []*driver.Message) (int, error) {
	if err := p.ensureExchange(ctx, n); err != nil {
		return 0, err
	}
	pc := p.pool[p.next.Add(1)%uint32(len(p.pool))]
	ch, closed, err := p.get(ctx, pc)
	if err != nil {
		return 0, err
	}
	sent, err := p.publishOn(ctx, ch, closed, n, msgs)
	if err != nil && retryable(err) {
		p.discard(pc, ch)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			p.declared.Delete(n.exchange)
		}
	}
	return sent, err
}

// discard drops a broken pooled channel so the next use opens a new one.
// It returns at once: the publish that found the channel broken is
// bounded by its deadline, and closing a channel waits for the broker.
func (p *publisher) discard(pc *pubChannel, ch *amqp.Channel) {
	_ = pc.mu.Lock(context.Background()) // a holder opening the channel gives up by its deadline
	mine := pc.ch == ch
	if mine {
		pc.ch = nil
	}
	pc.mu.Unlock()
	if mine {
		p.conn.drop(ch)
	}
}

// ensureExchange declares the topic's exchange the first time it is used,
// on a short-lived channel of its own. Never on a pooled channel: amqp091-go
// sends a method such as exchange.declare without the lock a publish holds
// across its frames, so a declaration could land between another
// goroutine's content header and body, which RabbitMQ answers by closing the
// connection (UNEXPECTED_FRAME).
func (p *publisher) ensureExchange(ctx context.Context, n names) error {
	if n.exchange == "" { // the default exchange (reply queues)
		return nil
	}
	if _, ok := p.declared.Load(n.exchange); ok {
		return nil
	}
	if err := p.declareMu.Lock(ctx); err != nil {
		return fmt.Errorf("rabbitmq: waiting for another publish to declare its exchange: %w", err)
	}
	defer p.declareMu.Unlock()
	if _, ok := p.declared.Load(n.exchange); ok {
		return nil
	}
	if err := p.conn.use(ctx, func(ch *amqp.Channel) error { return p.s.declareExchange(ch, n) }); err != nil {
		return err
	}
	p.declared.Store(n.exchange, struct{}{})
	return nil
}

func (p *publisher) publishOn(ctx context.Context, ch *amqp.Channel, closed *closeReason, n names, msgs []*driver.Message) (int, error) {
	window := make([]*amqp.DeferredConfirmation, 0, min(len(msgs), p.s.ConfirmWindow))
	confirmed := 0
	wait := func(dc *amqp.DeferredConfirmation) error {
		if dc == nil { // confirms off
			confirmed++
			return nil
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return err
		}
		if !ok {
			if ch.IsClosed() {
				return closed.lost(errChannelLost)
			}
			return errNacked
		}
		confirmed++
		return nil
	}
	for _, m := range msgs {
		if len(window) == p.s.ConfirmWindow {
			if err := wait(window[0]); err != nil {
				return confirmed, err
			}
			window = window[1:]
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, n.exchange, n.routingKey, false, false, toPublishing(m, !p.s.Transient, p.s.WireFormat == "cloudevents"))
		if err != nil {
			if errors.Is(err, amqp.ErrClosed) {
				err = closed.lost(err)
			}
			return confirmed, err
		}
		window = append(window, dc)
	}
	for _, dc := range window {
		if err := wait(dc); err != nil {
			return confirmed, err
		}
	}
	return confirmed, nil
}

// Close makes further Publish calls fail and closes the pooled channels.
func (p *publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	for _, pc := range p.pool {
		_ = pc.mu.Lock(context.Background())
		if pc.ch != nil && !pc.ch.IsClosed() {
			_ = pc.ch.Close()
		}
		pc.ch = nil
		pc.mu.Unlock()
	}
	return nil
}
