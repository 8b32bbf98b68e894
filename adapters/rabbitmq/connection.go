package rabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
)

// connection keeps one AMQP connection alive, redialling with backoff when
// the broker drops it. Watermill-amqp's ConnectionWrapper does the same job
// but swaps its "connected" channel and connection pointer without
// synchronisation, which the race detector reports during a reconnect; this
// one guards them with a mutex.
type connection struct {
	s        settings
	role     string // "publish" or "consume": separate connections, so flow control on publishing never stalls acks
	logger   *slog.Logger
	borrowed bool // the caller's (New): never redialled, never closed here

	mu    sync.Mutex
	conn  *amqp.Connection
	ready chan struct{} // closed while conn is usable
	node  int           // index in s.nodes of the node conn goes to; a redial tries the next first

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func dial(ctx context.Context, s settings, role string, logger *slog.Logger) (*connection, error) {
	c := &connection{s: s, role: role, logger: logger, ready: make(chan struct{}), done: make(chan struct{})}
	conn, err := c.dialOnce(ctx)
	if err != nil {
		return nil, err
	}
	c.install(conn)
	return c, nil
}

// dialTimeout bounds a connection's TCP, TLS and AMQP handshakes when the
// context has no deadline (a reconnect).
const dialTimeout = 30 * time.Second

// dialOnce connects and opens the AMQP connection, by ctx's deadline: a
// broker that accepts TCP and never answers fails then, saying so.
// borrow wraps the caller's connection: it is used as it is, and when it
// closes, channels fail instead of waiting for a redial.
func borrow(s settings, conn *amqp.Connection, logger *slog.Logger) *connection {
	c := &connection{s: s, role: "publish and consume", logger: logger, borrowed: true, ready: make(chan struct{}), done: make(chan struct{})}
	c.conn = conn
	close(c.ready)
	return c
}

func (c *connection) dialOnce(ctx context.Context) (*amqp.Connection, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	n := len(c.s.nodes)
	start := 0
	c.mu.Lock()
	if c.conn != nil { // a redial: the node that was in use is the one that went away
		start = c.node + 1
	}
	c.mu.Unlock()
	var errs []string
	for i := range n {
		node := (start + i) % n
		// Each node gets an equal share of what is left, so one that
		// accepts and never answers leaves time for the others.
		share := time.Until(deadline) / time.Duration(n-i)
		nctx, cancel := context.WithDeadline(ctx, time.Now().Add(share))
		conn, err := c.dialNode(nctx, c.s.nodes[node])
		cancel()
		if err == nil {
			c.mu.Lock()
			c.node = node
			c.mu.Unlock()
			return conn, nil
		}
		if n == 1 {
			return nil, err
		}
		errs = append(errs, err.Error())
		var de *dialError
		if errors.As(err, &de) && isRefusal(de.cause) {
			return nil, err // credentials or vhost: every node says the same
		}
	}
	return nil, &dialError{msg: fmt.Sprintf("rabbitmq: no node of %s answered: %s", c.s.where(), strings.Join(errs, "; ")), cause: errors.New("no node answered")}
}

// isRefusal reports whether err is the broker refusing the login (403) or
// the vhost (530), which another node of the cluster would refuse too.
func isRefusal(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && (ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed)
}

// dialNode connects to one node.
func (c *connection) dialNode(ctx context.Context, node string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("msgkit-" + c.role)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(dialTimeout)
	}
	var secured *recordingConn
	conn, err := amqp.DialConfig(c.s.dialURL, amqp.Config{Properties: props, Heartbeat: 10 * time.Second,
		Dial: func(network, _ string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, network, node)
			if err != nil {
				return nil, err
			}
			// Cleared by the library once the AMQP handshake is done.
			if err := nc.SetDeadline(deadline); err != nil {
				_ = nc.Close()
				return nil, err
			}
			if c.s.tls == nil {
				return nc, nil
			}
			// The TLS handshake is done here, not by amqp091 (which does it
			// for amqps://), because under TLS 1.3 a server refuses a client
			// certificate after the client's handshake ends: the alert comes
			// with the first read, which amqp091 reports only as a closed
			// connection. recordingConn keeps it.
			cfg := c.s.tls
			if c.s.nodeServerName {
				cfg = cfg.Clone()
				cfg.ServerName, _, _ = net.SplitHostPort(node)
			}
			tc := tls.Client(nc, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = nc.Close()
				return nil, err
			}
			secured = &recordingConn{Conn: tc}
			return secured, nil
		}})
	if err != nil && secured != nil {
		if first := secured.firstError(); first != nil && sdk.ExplainTLS(first, c.s.tls) != first {
			err = first
		}
	}
	if err != nil && !time.Now().Before(deadline) {
		err = fmt.Errorf("no AMQP handshake from the broker by the deadline (is something else listening there?): %w", err)
	}
	if err != nil {
		where := c.s.where()
		if len(c.s.nodes) > 1 {
			where = "node " + node
		}
		return nil, &dialError{
			msg:   fmt.Sprintf("rabbitmq: connect to %s: %s", where, explainDialError(redact(sdk.ExplainTLS(err, c.s.tls).Error(), c.s.url), c.s.tls != nil, c.s.tls != nil && len(c.s.tls.Certificates) > 0)),
			cause: err,
		}
	}
	return conn, nil
}

// recordingConn keeps the first error of a connection's reads and writes.
type recordingConn struct {
	net.Conn
	mu    sync.Mutex
	first error
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.record(err)
	return n, err
}

func (r *recordingConn) Write(p []byte) (int, error) {
	n, err := r.Conn.Write(p)
	r.record(err)
	return n, err
}

// ConnectionState is the TLS state, for amqp091's Connection.ConnectionState.
func (r *recordingConn) ConnectionState() tls.ConnectionState {
	return r.Conn.(*tls.Conn).ConnectionState()
}

func (r *recordingConn) record(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	if r.first == nil {
		r.first = err
	}
	r.mu.Unlock()
}

func (r *recordingConn) firstError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// dialError carries the cause for errors.Is and errors.As (an *amqp.Error
// with code 403 for refused credentials, a *net.OpError...) while its text
// is the redacted, explained one.
type dialError struct {
	msg   string
	cause error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.cause }

// explainDialError adds what to do to the broker's terse answers.
func explainDialError(msg string, withTLS, sentCertificate bool) string {
	switch {
	case withTLS && !strings.Contains(msg, "; ") && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset")):
		// Under TLS 1.3 the server's alert may be lost to the reset.
		if !sentCertificate {
			return msg + " (the broker closed the TLS connection after the handshake, as one that requires a client certificate does: set tls_cert_file and tls_key_file)"
		}
		return msg + " (the broker closed the TLS connection after the handshake: it may have refused the client certificate (tls_cert_file or tls_cert_pem))"
	case !withTLS && (strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "frame")):
		return msg + " (the broker closed the connection: if it listens with TLS there, write amqps:// in the URL)"
	case strings.Contains(msg, "403"), strings.Contains(msg, "ACCESS_REFUSED"), strings.Contains(msg, "username or password not allowed"):
		return msg + " (the user name or password in the URL was refused; check the credentials)"
	case strings.Contains(msg, "connection refused"):
		return msg + " (nothing listens there; is RabbitMQ running, and is the port right?)"
	case strings.Contains(msg, "no such host"):
		return msg + " (the host name does not resolve)"
	case strings.Contains(msg, "vhost"), strings.Contains(msg, "530"):
		return msg + " (the virtual host does not exist or the user may not use it)"
	}
	return msg
}

// redact removes the password of url from msg, in case a library echoes it.
func redact(msg, rawURL string) string {
	if i := strings.Index(rawURL, "://"); i >= 0 {
		creds := rawURL[i+3:]
		if at := strings.LastIndex(creds, "@"); at >= 0 {
			if _, pw, ok := strings.Cut(creds[:at], ":"); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return msg
}

func (c *connection) install(conn *amqp.Connection) {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	c.mu.Lock()
	c.conn = conn
	close(c.ready)
	c.mu.Unlock()
	c.wg.Add(1)
	go c.watch(closed)
}

// watch redials after the connection drops, until Close.
func (c *connection) watch(closed <-chan *amqp.Error) {
	defer c.wg.Done()
	var reason *amqp.Error
	select {
	case <-c.done:
		return
	case reason = <-closed:
	}
	c.markLost()
	c.logger.Warn("rabbitmq: connection lost; reconnecting", "role", c.role, "broker", c.s.where(), "reason", reason)
	delay := 100 * time.Millisecond
	for {
		select {
		case <-c.done:
			return
		case <-time.After(delay):
		}
		conn, err := c.dialOnce(context.Background())
		if err == nil {
			c.mu.Lock()
			node := c.s.nodes[c.node]
			c.mu.Unlock()
			c.logger.Info("rabbitmq: reconnected", "role", c.role, "broker", c.s.where(), "node", node)
			c.install(conn)
			return
		}
		c.logger.Warn("rabbitmq: reconnect failed; retrying", "role", c.role, "error", err, "retry_in", delay)
		delay = min(delay*2, c.s.ReconnectMaxInterval)
	}
}

// channel opens a channel on the current connection, waiting for a
// reconnect when there is none, and runs setup on it (enabling confirms,
// declaring, starting a consumer), until ctx ends. On any error, the
// channel is closed.
//
// amqp091-go takes no context for opening a channel or for a method that
// waits for the broker's answer (declare, delete, qos, confirm, consume,
// close): against a broker that has stopped answering, each waits until
// the heartbeat finds the connection dead. So they run on a goroutine of
// their own, and channel returns when ctx ends even if they have not; the
// goroutine finishes when the broker answers or the connection is
// declared dead, and closes the channel it opened.
func (c *connection) channel(ctx context.Context, setup func(*amqp.Channel) error) (*amqp.Channel, error) {
	return c.opened(ctx, setup, true)
}

// use runs fn on a channel of its own, closed afterwards, returning by
// ctx's end as channel does.
func (c *connection) use(ctx context.Context, fn func(*amqp.Channel) error) error {
	_, err := c.opened(ctx, fn, false)
	return err
}

func (c *connection) opened(ctx context.Context, setup func(*amqp.Channel) error, keep bool) (*amqp.Channel, error) {
	for {
		c.mu.Lock()
		ready, conn := c.ready, c.conn
		c.mu.Unlock()
		if !c.borrowed {
			select {
			case <-c.done:
				return nil, fmt.Errorf("rabbitmq: connection %w", sdk.ErrClosed)
			case <-ctx.Done():
				return nil, fmt.Errorf("rabbitmq: waiting for the connection to %s: %w", c.s.where(), ctx.Err())
			case <-ready:
			}
		}
		ch, opened, err := c.open(ctx, conn, setup, keep)
		switch {
		case err == nil:
			return ch, nil
		case c.borrowed && !opened:
			return nil, fmt.Errorf("rabbitmq: on the connection given to rabbitmq.New (it is not redialled): %w", err)
		case c.borrowed || opened || !errors.Is(err, amqp.ErrClosed):
			return nil, err
		}
		// The connection died between ready and Channel; wait for the redial.
		c.markLost()
	}
}

// open opens a channel on conn and runs setup on it, on a goroutine of its
// own (see channel). opened says whether the channel had opened when err
// happened. Unless keep, the channel is closed after setup.
func (c *connection) open(ctx context.Context, conn *amqp.Connection, setup func(*amqp.Channel) error, keep bool) (_ *amqp.Channel, opened bool, _ error) {
	type result struct {
		ch     *amqp.Channel
		opened bool
		err    error
	}
	done := make(chan result) // unbuffered: a result nobody takes is closed, not lost
	abandoned := make(chan struct{})
	go func() {
		r := result{}
		if r.ch, r.err = conn.Channel(); r.err != nil {
			r.err = fmt.Errorf("rabbitmq: open channel on %s: %w", c.s.where(), r.err)
		} else {
			r.opened = true
			if setup != nil {
				r.err = setup(r.ch)
			}
			if r.err != nil || !keep {
				_ = r.ch.Close()
				r.ch = nil
			}
		}
		select {
		case done <- r:
		case <-abandoned:
			if r.ch != nil {
				_ = r.ch.Close()
			}
		}
	}()
	select {
	case r := <-done:
		return r.ch, r.opened, r.err
	case <-ctx.Done():
		close(abandoned)
		return nil, false, fmt.Errorf("rabbitmq: %s did not answer (opening a channel, declaring) before the deadline: %w", c.s.where(), ctx.Err())
	}
}

// drop closes ch, a channel given up on, without waiting for the broker's
// answer, which a broker that has stopped answering never sends: the close
// runs on a goroutine that ends when the broker answers or the connection
// is declared dead. Once the connection is closing there is nothing to do:
// closing it closes its channels.
func (c *connection) drop(ch *amqp.Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = ch.Close()
	}()
}

// markLost makes callers of channel wait for the next install. Whoever
// notices the loss first (watch, or a caller whose Channel call failed)
// swaps in a fresh ready channel; the others find it open and leave it, so
// there is only ever one for install to close.
func (c *connection) markLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.ready:
		if c.conn == nil || c.conn.IsClosed() {
			c.ready = make(chan struct{})
		}
	default:
	}
}

func (c *connection) close() error {
	first := false
	c.closeOnce.Do(func() {
		c.mu.Lock() // drop adds to wg under mu, before done is closed or not at all
		close(c.done)
		c.mu.Unlock()
		first = true
	})
	if !first {
		return nil
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	var err error
	if conn != nil && !conn.IsClosed() && !c.borrowed {
		if cerr := conn.Close(); cerr != nil && !errors.Is(cerr, amqp.ErrClosed) {
			err = fmt.Errorf("rabbitmq: close %s connection: %w", c.role, cerr)
		}
	}
	c.wg.Wait()
	return err
}
