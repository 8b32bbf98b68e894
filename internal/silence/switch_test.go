package silence

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// echo starts a server that answers each line with itself.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveEcho(c)
		}
	}()
	return ln.Addr().String()
}

// serveEcho answers each line on c with itself until c ends.
func serveEcho(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := c.Write([]byte(line)); err != nil {
			return
		}
	}
}

// client is one connection to an echo server, through the Switch.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{c, bufio.NewReader(c)}
}

// ask sends line and returns the answer, or "" if none came within d.
func (k *client) ask(t *testing.T, line string, d time.Duration) string {
	t.Helper()
	if _, err := k.c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	return k.next(d)
}

// next returns the next answer, or "" if none came within d.
func (k *client) next(d time.Duration) string {
	_ = k.c.SetReadDeadline(time.Now().Add(d))
	got, err := k.r.ReadString('\n')
	if err != nil {
		return ""
	}
	return got[:len(got)-1]
}

// silenceHolds checks that k is answered, then that once s is silent it
// is not; it leaves s silent, holding "two".
func silenceHolds(t *testing.T, s *Switch, k *client) {
	t.Helper()
	if got := k.ask(t, "one", 5*time.Second); got != "one" {
		t.Fatalf("before Silence: got %q, want one", got)
	}
	s.Silence()
	if got := k.ask(t, "two", 300*time.Millisecond); got != "" {
		t.Fatalf("while silent an answer came through: %q", got)
	}
}

// Through the proxy or the listener, bytes go both ways; while silent none
// does, and what was sent meanwhile arrives on Resume, on the same
// connection.
func TestSwitchHoldsEverythingWhileSilentAndCarriesItOnResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("proxy", func(t *testing.T) {
		s := New(t)
		k := dial(t, s.Proxy(t, echo(t)))
		silenceHolds(t, s, k)
		late := dial(t, s.Proxy(t, echo(t)))
		if got := late.ask(t, "new", 300*time.Millisecond); got != "" {
			t.Fatalf("a connection made while silent was answered: %q", got)
		}
		s.Resume()
		if got := k.next(5 * time.Second); got != "two" {
			t.Fatalf("after Resume: got %q, want what was held (two)", got)
		}
		if got := late.next(5 * time.Second); got != "new" {
			t.Fatalf("after Resume, the connection made while silent: got %q, want new", got)
		}
	})
	t.Run("listener", func(t *testing.T) {
		s := New(t)
		ln, err := s.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			if c, err := ln.Accept(); err == nil {
				serveEcho(c)
			}
		}()
		k := dial(t, ln.Addr().String())
		silenceHolds(t, s, k)
		s.Resume()
		if got := k.next(5 * time.Second); got != "two" {
			t.Fatalf("after Resume: got %q, want what was held (two)", got)
		}
	})
}

// Cut ends every connection made so far, and the next one is carried.
func TestSwitchCutEndsConnectionsAndTakesNewOnes(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("proxy", func(t *testing.T) { // its cleanups run before the leak check
		s := New(t)
		addr := s.Proxy(t, echo(t))
		k := dial(t, addr)
		if got := k.ask(t, "one", 5*time.Second); got != "one" {
			t.Fatalf("before Cut: got %q, want one", got)
		}
		s.Cut()
		_ = k.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := k.r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after Cut the connection must end at once, got %v", err)
		}
		if got := dial(t, addr).ask(t, "two", 5*time.Second); got != "two" {
			t.Fatalf("a connection made after Cut: got %q, want two", got)
		}
	})
}
