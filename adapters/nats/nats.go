// Package nats is the NATS JetStream driver, on nats.go and its jetstream
// package.
//
// A topic is a subject stored by a JetStream stream: the stream that
// already captures the subject, or one created for the topic. A consumer
// group is a durable pull consumer on that stream with explicit acks; each
// Subscribe call is one member pulling batches of batch_size. A nack is a
// NAK, redelivered at once to any member; a message held past ack_wait by a
// member that died goes to another. Request/reply uses core NATS subjects,
// kept out of every stream. See docs/adapters/nats.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/nats"
package nats

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "nats"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens NATS JetStream transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := parseSettings(cfg)
	return err
}

// Open validates cfg, connects, and checks that the server has JetStream,
// by ctx's deadline.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	nc, err := connect(ctx, s)
	if err != nil {
		return nil, err
	}
	t, err := newTransport(ctx, s, nc, true)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return t, nil
}

// New returns a transport on the caller's own connection (its servers,
// credentials, TLS and reconnect policy). A bad option is a
// *sdk.ConfigError naming it. Close leaves nc open.
func New(ctx context.Context, nc *nats.Conn, o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	s := newSettings(sdk.Config{}, o)
	s.hosts = []string{nc.ConnectedAddr()}
	return newTransport(ctx, s, nc, false)
}

// connect dials by ctx's deadline: nats.go bounds its handshake by its own
// timeout, so a server that accepts and never answers is left behind here.
func connect(ctx context.Context, s settings) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("msgkit"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second), nats.ErrorHandler(logAsyncError)}
	if d, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(max(time.Until(d), time.Millisecond)))
	}
	if s.tls != nil {
		opts = append(opts, nats.Secure(s.tls.Clone()))
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(s.url, opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("nats: connect to %s: %s", s.where(), explain(r.err, s.tls))
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("nats: connect to %s: no answer from the server (is it NATS, and is TLS configured as the server expects?): %w", s.where(), ctx.Err())
	}
}

// logAsyncError logs what nats.go reports outside any call (a write that
// failed as the server went away, a subscription that fell behind), where
// its default handler would print it to stderr, past the application's
// logger.
func logAsyncError(nc *nats.Conn, sub *nats.Subscription, err error) {
	args := []any{"server", nc.ConnectedUrlRedacted(), "error", err}
	if sub != nil {
		args = append(args, "subject", sub.Subject)
	}
	slog.Default().Warn("nats: asynchronous error on the connection", args...)
}

// explain adds to a connection error what to change: the credentials, the
// address, or the TLS settings tc (nil for a nats:// URL).
func explain(err error, tc *tls.Config) string {
	msg := err.Error()
	switch {
	case tc == nil && (errors.Is(err, nats.ErrSecureConnRequired) || strings.Contains(msg, "tls")):
		// nats.go starts TLS by itself when the server requires it, with
		// the system roots and no client certificate.
		return msg + " (the server requires TLS: write tls:// in url, with the tls_* options it needs)"
	case tc != nil && strings.Contains(msg, "after TLS handshake"):
		// TLS 1.3: the server checks the client certificate after the
		// client's side of the handshake is done, and hangs up.
		if len(tc.Certificates) == 0 {
			return msg + " (the server closed the TLS connection after the handshake: it may require a client certificate: set tls_cert_file and tls_key_file, or tls_cert_pem and tls_key_pem)"
		}
		return msg + " (the server closed the TLS connection after the handshake: it may have refused the client certificate (tls_cert_file or tls_cert_pem))"
	}
	if e := sdk.ExplainTLS(err, tc); e != err {
		return e.Error()
	}
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired):
		return err.Error() + " (the server refused the credentials; check the user and password or token in the URL)"
	case errors.Is(err, nats.ErrNoServers):
		return err.Error() + " (nothing answered at any listed server; is nats-server running, and is the port right?)"
	}
	return err.Error()
}

func newTransport(ctx context.Context, s settings, nc *nats.Conn, owned bool) (*Transport, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(s.PublishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("nats: %s: %w", s.where(), err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("nats: %s has no JetStream (start nats-server with -js, or enable it for this account): %w", s.where(), err)
		}
		return nil, fmt.Errorf("nats: ask %s for its JetStream account: %w", s.where(), err)
	}
	closing, closed := context.WithCancel(context.Background())
	return &Transport{s: s, nc: nc, js: js, owned: owned, closing: closing, closed: closed}, nil
}

// Transport is an open NATS JetStream transport.
type Transport struct {
	s     settings
	nc    *nats.Conn
	js    jetstream.JetStream
	owned bool // false: the caller's connection (New), left open by Close

	streams sync.Map // topic -> jetstream.Stream

	// Closed subscriptions hand back what they held once their last pull
	// ends; closing tells them to do it at once, and Close waits for them.
	lingering sync.WaitGroup
	lingerMu  sync.Mutex // orders linger's Add before Close's Wait
	waiting   bool       // Close waits for lingering; linger adds no more
	closing   context.Context
	closed    context.CancelFunc

	subs driver.Subscriptions[driver.Subscription]
}

// headerRoom is the part of the server's max_payload kept for headers.
const headerRoom = 64 << 10

// Capabilities declares what JetStream guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:          true,
		Ordering:                sdk.OrderingNone, // competing members and NAKs reorder
		DurableGroups:           true,
		NewGroupsReceiveHistory: t.s.startOldest,
		ChoosesGroupStart:       true,
		Persistent:              t.s.storage == jetstream.FileStorage,
		RequestReply:            true,
		RemovesGroups:           true,
		MaxPayloadBytes:         int(t.nc.MaxPayload()) - headerRoom,
		MaxMetadataBytes:        headerRoom / 4, // room for the base64 of names and values that need it
	}
}

// SendOptions: batches up to the async-publish window, retried until
// publish_timeout when the caller's context has no deadline.
func (t *Transport) SendOptions() driver.SendOptions {
	return driver.SendOptions{MaxMessages: 1000, Timeout: t.s.PublishTimeout}
}

// SendBatch publishes msgs without waiting between them and then waits for
// the stream's acknowledgement of each. A reply topic is a core NATS
// subject: it is published and flushed, with no stream behind it.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if t.isClosed() {
		return fmt.Errorf("nats: publish to %s: transport %w", sdk.QuoteName(topic), sdk.ErrClosed)
	}
	if strings.HasPrefix(topic, driver.ReplyTopicPrefix) {
		return t.sendCore(ctx, topic, msgs)
	}
	if _, err := t.stream(ctx, topic); err != nil {
		return err
	}
	var errs driver.BatchError // made at the first failure: most batches have none
	fail := func(i int, err error) {
		if errs == nil {
			errs = make(driver.BatchError, len(msgs))
		}
		errs[i] = err
	}
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		nm := encode(topic, m)
		if t.s.WireFormat == "cloudevents" {
			if err := cloudEvent(nm, m); err != nil {
				fail(i, err)
				continue
			}
		}
		if err := t.checkSize(topic, nm); err != nil {
			fail(i, err)
			continue
		}
		f, err := t.js.PublishMsgAsync(nm)
		if err != nil {
			fail(i, err)
			continue
		}
		acks[i] = f
	}
	for i, f := range acks {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fail(i, err)
		case <-ctx.Done():
			return fmt.Errorf("nats: publish to %s on %s: waited for the stream to acknowledge %d messages: %w", sdk.QuoteName(topic), t.s.where(), len(msgs)-i, ctx.Err())
		}
	}
	if errs == nil {
		return nil
	}
	failed := 0
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.forget(topic) // the stream may be gone: look it up again on the retry
		}
		errs[i] = fmt.Errorf("nats: publish to %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	if failed == len(msgs) {
		return errs[0]
	}
	return errs
}

func (t *Transport) sendCore(ctx context.Context, topic string, msgs []*driver.Message) error {
	for _, m := range msgs {
		nm := encode(topic, m)
		if err := t.checkSize(topic, nm); err != nil {
			return err
		}
		if err := t.nc.PublishMsg(nm); err != nil {
			return fmt.Errorf("nats: publish to %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
		}
	}
	if err := t.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats: publish to %s on %s: flush: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	return nil
}

// checkSize refuses a message whose headers and payload together exceed
// the server's max_payload, which would otherwise close the connection.
func (t *Transport) checkSize(topic string, m *nats.Msg) error {
	size := len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if limit := int(t.nc.MaxPayload()); size > limit {
		return fmt.Errorf("nats: publish to %q: message of %d bytes with its headers is over the server's max_payload of %d bytes: %w",
			topic, size, limit, sdk.ErrPayloadTooLarge)
	}
	return nil
}

// IsRetryable reports whether err is the connection or the stream being
// unavailable for a while rather than a refusal.
func (t *Transport) IsRetryable(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout)
}

// OpenSubscription creates the topic's stream and the group's durable
// consumer when they do not exist, and returns a member of the group.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("nats: consumer group is empty; name the group (usually the service name)")
	}
	if t.subs.Closed() {
		return nil, fmt.Errorf("nats: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	c, err := t.consumer(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	s, err := newSubscription(t, topic, group, c)
	if err != nil {
		return nil, err
	}
	return t.track(s)
}

// OpenReplySubscription subscribes to a client's private reply subject on
// core NATS; the interest ends when the subscription closes.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("nats: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	sub, err := t.nc.SubscribeSync(topic)
	if err == nil {
		err = t.nc.FlushWithContext(ctx) // the server knows of the interest before a request goes out
	}
	if err != nil {
		return nil, fmt.Errorf("nats: subscribe to reply subject %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	return t.track(&replySubscription{t: t, sub: sub, repeated: newRepeated()})
}

func (t *Transport) track(s driver.Subscription) (driver.Subscription, error) {
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("nats: transport %w", err)
	}
	return s, nil
}

func (t *Transport) isClosed() bool { return t.closing.Err() != nil }

// As reaches the connection (**nats.Conn) and the JetStream context
// (*jetstream.JetStream).
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **nats.Conn:
		*p = t.nc
	case *jetstream.JetStream:
		*p = t.js
	default:
		return false
	}
	return true
}

// Close closes every subscription, hands back at once what they held, and
// then closes the connection, after flushing what was published.
func (t *Transport) Close() error {
	t.closed()
	if first, _ := t.subs.Close(); !first {
		return nil
	}
	t.lingerMu.Lock()
	t.waiting = true
	t.lingerMu.Unlock()
	t.lingering.Wait()
	if t.owned {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = t.nc.FlushWithContext(ctx)
		t.nc.Close()
	}
	return nil
}

// linger runs handBack on a goroutine Close waits for, or on the caller's
// once Close is waiting: a subscription's Close may run beside the
// transport's (the client's Close gives up on a subscription that does not
// stop by its deadline and closes the transport), and a WaitGroup must not
// grow from zero while it is waited on.
func (t *Transport) linger(handBack func()) {
	t.lingerMu.Lock()
	if t.waiting {
		t.lingerMu.Unlock()
		handBack()
		return
	}
	t.lingering.Add(1)
	t.lingerMu.Unlock()
	go func() {
		defer t.lingering.Done()
		handBack()
	}()
}

var _ driver.Transport = (*Transport)(nil)
