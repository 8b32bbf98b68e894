package silence

import (
	"bufio"
	"net"
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

// roundTrip sends line and returns the answer, or "" if none came within d.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string, d time.Duration) string {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	got, err := r.ReadString('\n')
	if err != nil {
		return ""
	}
	return got[:len(got)-1]
}

// Through the proxy, bytes go both ways; while silent none does, and what
// was sent meanwhile arrives on Resume, on the same connection.
func TestProxyHoldsEverythingWhileSilentAndCarriesItOnResume(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("proxy", func(t *testing.T) {
		s := New(t)
		c, err := net.Dial("tcp", s.Proxy(t, echo(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if got := roundTrip(t, c, r, "one", 5*time.Second); got != "one" {
			t.Fatalf("before Silence: got %q, want one", got)
		}
		s.Silence()
		if got := roundTrip(t, c, r, "two", 300*time.Millisecond); got != "" {
			t.Fatalf("while silent an answer came through: %q", got)
		}
		late, err := net.Dial("tcp", s.Proxy(t, echo(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer late.Close()
		lr := bufio.NewReader(late)
		if got := roundTrip(t, late, lr, "new", 300*time.Millisecond); got != "" {
			t.Fatalf("a connection made while silent was answered: %q", got)
		}
		s.Resume()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.ReadString('\n'); got != "two\n" {
			t.Fatalf("after Resume: got %q (%v), want what was held (two)", got, err)
		}
		_ = late.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := lr.ReadString('\n'); got != "new\n" {
			t.Fatalf("after Resume, the connection made while silent: got %q (%v), want new", got, err)
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
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if got := roundTrip(t, c, r, "one", 5*time.Second); got != "one" {
			t.Fatalf("before Silence: got %q, want one", got)
		}
		s.Silence()
		if got := roundTrip(t, c, r, "two", 300*time.Millisecond); got != "" {
			t.Fatalf("while silent the server answered: %q", got)
		}
		s.Resume()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := r.ReadString('\n'); got != "two\n" {
			t.Fatalf("after Resume: got %q (%v), want two", got, err)
		}
	})
}
