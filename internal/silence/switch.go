// Package silence makes a broker go silent in the middle of a session, as
// a stopped process or a network dropping every packet does, or cuts its
// connections, as a restart does, and checks what a client does meanwhile
// and after: Check (a short silence), CheckOutage (one past heartbeats and
// sessions), CheckCuts and CheckCloseWhileSilent.
package silence

import (
	"net"
	"sync"
	"testing"
)

// Switch makes a server go silent, as one whose process stopped
// (SIGSTOP, a long pause) or behind a network that drops every packet
// does: nothing is carried either way and nothing is closed; a new
// connection is accepted and hears nothing. Resume carries what was held
// and carries on. A driver reaches the server through Proxy's address, or
// the server listens with Listen (kfake's ListenFn) when it tells clients
// its own address.
type Switch struct {
	done chan struct{} // closed when the test ends

	mu    sync.Mutex
	heard chan struct{} // closed while the server may be heard; replaced on Silence
	conns map[net.Conn]struct{}
	lns   []net.Listener
	wg    sync.WaitGroup
}

// New returns a Switch, not silent, whose proxies, listeners and
// connections are closed when the test ends.
func New(tb testing.TB) *Switch {
	s := &Switch{done: make(chan struct{}), heard: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(s.heard)
	tb.Cleanup(s.close)
	return s
}

// Silence stops all traffic until Resume.
func (s *Switch) Silence() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.heard:
		s.heard = make(chan struct{})
	default: // already silent
	}
}

// Resume carries traffic again, starting with what was held.
func (s *Switch) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.heard:
	default:
		close(s.heard)
	}
}

// Cut closes every connection made so far, at both ends, as a broker
// restart or a reset network does; new connections are accepted as
// before.
func (s *Switch) Cut() {
	s.mu.Lock()
	conns := s.conns
	s.conns = map[net.Conn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// wait returns once the server may be heard, false if the test is ending.
func (s *Switch) wait() bool {
	s.mu.Lock()
	heard := s.heard
	s.mu.Unlock()
	select {
	case <-heard:
		return true
	case <-s.done:
		return false
	}
}

// Proxy starts a TCP proxy to target (host:port) and returns its address
// (127.0.0.1:port).
func (s *Switch) Proxy(tb testing.TB, target string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if !s.track(nil, ln) {
		tb.Fatal("silence: Switch used after its test ended")
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil || !s.track(c, nil) {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if !s.wait() {
					return
				}
				up, err := net.Dial("tcp", target)
				if err != nil {
					_ = c.Close()
					return
				}
				if !s.track(up, nil) {
					return
				}
				s.wg.Add(2)
				go s.copy(up, c)
				go s.copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// Listen is net.Listen whose connections go silent with the Switch.
func (s *Switch) Listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	if !s.track(nil, ln) {
		return nil, net.ErrClosed
	}
	return silentListener{ln, s}, nil
}

type silentListener struct {
	net.Listener
	s *Switch
}

func (l silentListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.s.track(c, nil) {
		return nil, net.ErrClosed
	}
	return silentConn{c, l.s}, nil
}

// silentConn is a server's side of a connection: while silent, its reads
// and writes wait.
type silentConn struct {
	net.Conn
	s *Switch
}

func (c silentConn) Read(p []byte) (int, error) {
	if !c.s.wait() {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.s.wait() {
		return 0, net.ErrClosed
	}
	return n, err
}

func (c silentConn) Write(p []byte) (int, error) {
	if !c.s.wait() {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// track registers c or ln to be closed when the test ends; false (closed
// at once) when it is ending already.
func (s *Switch) track(c net.Conn, ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		if c != nil {
			_ = c.Close()
		}
		if ln != nil {
			_ = ln.Close()
		}
		return false
	default:
	}
	if c != nil {
		s.conns[c] = struct{}{}
	}
	if ln != nil {
		s.lns = append(s.lns, ln)
	}
	return true
}

// copy forwards src to dst, holding what it read while silent. When
// either side ends, both are closed, as a connection is.
func (s *Switch) copy(dst, src net.Conn) {
	defer s.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		if !s.wait() {
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			if !s.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Switch) close() {
	s.mu.Lock()
	close(s.done)
	conns, lns := s.conns, s.lns
	s.conns, s.lns = nil, nil
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
}
