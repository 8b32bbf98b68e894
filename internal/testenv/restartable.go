package testenv

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// Restartable is a TCP forwarder to a server that a test can take down
// (connections refused, open ones cut) and bring back on the same address,
// as a server that restarts does.
type Restartable struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewRestartable starts forwarding a free loopback port to target
// (host:port); it stops when the test ends.
func NewRestartable(t testing.TB, target string) *Restartable {
	t.Helper()
	r := &Restartable{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(func() {
		r.Down()
		r.wg.Wait()
	})
	return r
}

// Addr is the address that forwards to the target while it is up.
func (r *Restartable) Addr() string { return r.addr }

// Down stops listening and cuts every connection: calls are refused.
func (r *Restartable) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		_ = c.Close()
	}
	clear(r.conns)
}

// Up listens on the same address again.
func (r *Restartable) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("listen on %s again: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *Restartable) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", r.target)
			if err != nil || !r.track(c, up) {
				_ = c.Close()
				if up != nil {
					_ = up.Close()
				}
				continue
			}
			r.wg.Add(2)
			go r.copy(up, c)
			go r.copy(c, up)
		}
	}()
}

// track records c and up as open, unless the listener was taken down.
func (r *Restartable) track(c, up net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return false
	}
	r.conns[c], r.conns[up] = struct{}{}, struct{}{}
	return true
}

func (r *Restartable) copy(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// PublishWaitsForRestart checks that a Publish made while the server
// behind r is down waits for it and succeeds once it is back within the
// publish's deadline, instead of failing at the first refused connection.
// c's driver must talk to the server through r.Addr.
func PublishWaitsForRestart(t *testing.T, r *Restartable, c *sdk.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	if err := c.Publish(ctx, topic, sdk.NewMessage([]byte("before"))); err != nil {
		t.Fatal(err)
	}
	r.Down()
	const downFor = 3 * time.Second
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- c.Publish(ctx, topic, sdk.NewMessage([]byte("while down"))) }()
	select {
	case err := <-done:
		t.Fatalf("a publish made while the server was down returned after %v, before it came back: %v", time.Since(started).Round(time.Millisecond), err)
	case <-time.After(downFor):
	}
	r.Up(t)
	if err := Await(t, done, "the publish made while the server was down"); err != nil {
		t.Fatalf("a publish made while the server was down for %v failed although it came back within the publish's deadline: %v", downFor, err)
	}
}
