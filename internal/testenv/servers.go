package testenv

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	exited, out, _ := startProcess(t, "redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", f.ServerCert, "--tls-key-file", f.ServerKey, "--tls-ca-cert-file", f.CA,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", f.Dir)
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
func waitForTLS(t testing.TB, what, addr string, c *tls.Config, exited <-chan struct{}, out *LockedBuffer) {
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
		case <-exited:
			t.Fatalf("%s exited before it listened on %s:\n%s", what, addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not accept a TLS connection on %s within 20s (last: %v):\n%s", what, addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a port: there is no signal to wait for
	}
}

// LockedBuffer collects text written by other goroutines or processes (a
// server's output, a logger's lines) for a test to read while they write.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (o *LockedBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *LockedBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// StartNATSTLS starts a private nats-server with JetStream on loopback
// that requires TLS, with f's server certificate, and a client certificate
// signed by f's CA. It returns host:port and stops the server when the
// test ends.
func StartNATSTLS(t testing.TB, f TLSFiles) string {
	t.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		t.Fatalf("nats-server is not installed (apt-get install nats-server): %v", err)
	}
	port := FreePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(f.Dir, "nats-tls.conf")
	text := fmt.Sprintf("listen: %q\njetstream { store_dir: %q }\ntls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 5 }\n",
		addr, filepath.Join(f.Dir, "jetstream"), f.ServerCert, f.ServerKey, f.CA)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	exited, out, _ := startProcess(t, "nats-server", "-c", conf)
	waitForNATS(t, addr, exited, out) // a NATS server greets in plain text (INFO) before the TLS handshake
	return addr
}

// startProcess starts a server process that is killed when the test ends;
// exited is closed when it ends, out collects its output, pid is its
// process id.
func startProcess(t testing.TB, name string, args ...string) (exited <-chan struct{}, out *LockedBuffer, pid int) {
	t.Helper()
	out = &LockedBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(out, "\n[%s exited: %v]\n", name, err)
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return done, out, cmd.Process.Pid
}
