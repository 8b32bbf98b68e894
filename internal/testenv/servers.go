package testenv

import (
	"bytes"
	"crypto/tls"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that nothing listened on a moment
// ago, for a server a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartRedisTLS starts a private redis-server on loopback that listens only
// with TLS, with f's server certificate, and requires a client certificate
// signed by f's CA. It returns host:port and stops the server when the test
// ends.
func StartRedisTLS(t testing.TB, f TLSFiles) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	port := FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	out := &output{}
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey, "--tls-ca-cert-file", f.CA,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", f.Dir)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server with TLS: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	client := f.ServerConfig(t, false)
	client.Certificates = nil
	pair, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	client.Certificates, client.RootCAs = []tls.Certificate{pair}, nil
	client.InsecureSkipVerify = true //nolint:gosec // only waits for the listener
	waitForTLS(t, "redis-server (TLS)", addr, client, exited, out)
	return addr
}

// waitForTLS waits up to 20 s until a TLS handshake with addr succeeds, and
// fails the test with the server's output if the server exits first.
func waitForTLS(t testing.TB, what, addr string, c *tls.Config, exited <-chan error, out *output) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := &net.Dialer{Timeout: time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, c)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case werr := <-exited:
			t.Fatalf("%s exited before it listened on %s (%v):\n%s", what, addr, werr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept a TLS connection on %s within 20s (last: %v):\n%s", what, addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a port: there is no signal to wait for
	}
}

// output collects a server's output for a failure message; the process
// writes it while the test may read it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
