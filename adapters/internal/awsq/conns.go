package awsq

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
)

// connections tracks the HTTP connections of one transport, so that
// closing it ends every one of them once no request is in flight.
// CloseIdleConnections alone misses a connection whose request was still
// running at Close (a long poll, or acks sent to a broker that stopped
// answering) and that goes idle afterwards, keeping two goroutines for as
// long as the process runs.
type connections struct {
	mu       sync.Mutex
	open     map[net.Conn]struct{}
	inflight int
	closed   bool
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer wraps dial so that every connection it makes is tracked.
func (c *connections) dialer(dial dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		t := &trackedConn{Conn: conn, set: c}
		c.mu.Lock()
		if c.open == nil {
			c.open = map[net.Conn]struct{}{}
		}
		c.open[t] = struct{}{}
		c.mu.Unlock()
		return t, nil
	}
}

// roundTripper wraps rt so that requests in flight are counted until their
// response body is closed.
func (c *connections) roundTripper(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.inflight++
		c.mu.Unlock()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			c.done()
			return nil, err
		}
		resp.Body = &countedBody{ReadCloser: resp.Body, done: c.done}
		return resp, nil
	})
}

// close ends every connection now if no request is in flight, or else
// once the last one finishes.
func (c *connections) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.endIfIdle()
}

func (c *connections) done() {
	c.mu.Lock()
	c.inflight--
	c.mu.Unlock()
	c.endIfIdle()
}

func (c *connections) endIfIdle() {
	c.mu.Lock()
	if !c.closed || c.inflight > 0 {
		c.mu.Unlock()
		return
	}
	open := c.open
	c.open = nil
	c.mu.Unlock()
	for conn := range open {
		_ = conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set  *connections
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.set.mu.Lock()
		delete(t.set.open, t)
		t.set.mu.Unlock()
	})
	return t.Conn.Close()
}

// countedBody tells done once, when the body is closed.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
