package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TLSFiles are a CA, a server certificate it signed for 127.0.0.1, ::1
// and localhost, a client certificate it signed, and a second CA with a
// client certificate of its own, generated for one test and written as PEM files.
type TLSFiles struct {
	Dir                                              string
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	OtherCA                                          string // a CA that signed none of the above
	OtherClientCert, OtherClientKey                  string // a client certificate OtherCA signed
	CAPEM, ClientCertPEM, ClientKeyPEM               string
}

// NewTLSFiles generates the certificates into dir (a t.TempDir when dir is
// ""). The files are readable by every user, since a broker started by the
// test may run as its own user; they hold throwaway keys.
func NewTLSFiles(t testing.TB, dir string) TLSFiles {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, blockType string, der []byte) (string, string) {
		p := filepath.Join(dir, name)
		b := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p, string(b)
	}
	caKey, caCert, caDER := newCA(t, "msgkit test CA")
	otherKey, otherCert, otherDER := newCA(t, "msgkit other CA")
	f := TLSFiles{Dir: dir}
	f.CA, f.CAPEM = write("ca.pem", "CERTIFICATE", caDER)
	f.OtherCA, _ = write("other-ca.pem", "CERTIFICATE", otherDER)
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, key := signLeaf(t, server, caCert, caKey)
	f.ServerCert, _ = write("server.pem", "CERTIFICATE", der)
	f.ServerKey, _ = write("server-key.pem", "PRIVATE KEY", key)
	client := &x509.Certificate{Subject: pkix.Name{CommonName: "msgkit-test-client"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, key = signLeaf(t, client, caCert, caKey)
	f.ClientCert, f.ClientCertPEM = write("client.pem", "CERTIFICATE", der)
	f.ClientKey, f.ClientKeyPEM = write("client-key.pem", "PRIVATE KEY", key)
	client = &x509.Certificate{Subject: pkix.Name{CommonName: "msgkit-test-stranger"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, key = signLeaf(t, client, otherCert, otherKey)
	f.OtherClientCert, _ = write("other-client.pem", "CERTIFICATE", der)
	f.OtherClientKey, _ = write("other-client-key.pem", "PRIVATE KEY", key)
	return f
}

// ServerConfig is a server TLS configuration with the server certificate;
// requireClient makes it require a client certificate signed by the CA.
func (f TLSFiles) ServerConfig(t testing.TB, requireClient bool) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if requireClient {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(f.CAPEM))
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c
}

var serial atomic.Int64

func nextSerial() *big.Int { return big.NewInt(time.Now().UnixNano() + serial.Add(1)) }

func newCA(t testing.TB, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

// signLeaf completes tmpl, signs it with the CA and returns the
// certificate and its PKCS #8 private key, both DER.
func signLeaf(t testing.TB, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (cert, key []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = nextSerial()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	cert, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err = x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// StartTLSProxy serves TLS on a loopback port with f's server certificate,
// requiring a client certificate signed by f.CA, and pipes the bytes of
// each connection to target (http://host:port), as a TLS-terminating load
// balancer in front of an HTTP API would. A byte pipe, not an HTTP reverse
// proxy: each client connection keeps one upstream connection for its
// life, so the proxy never stands between a response and its body: it
// has no response of its own to abort mid-body (a 200 cut short, which no
// client can retry) when an upstream connection closes. A plain
// HTTP request to the port gets the 400 net/http answers with. It returns
// host:port and stops, with every connection, when the test ends.
func StartTLSProxy(t testing.TB, f TLSFiles, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", f.ServerConfig(t, true))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		open  = map[net.Conn]bool{} // live connections, closed at the test's end
		wg    sync.WaitGroup
		track = func(c net.Conn) (untrack func(), ok bool) {
			mu.Lock()
			defer mu.Unlock()
			if open == nil { // stopped
				c.Close()
				return nil, false
			}
			open[c] = true
			return func() {
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			}, true
		}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			untrack, ok := track(c)
			if !ok {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer untrack()
				pipeTLS(c.(*tls.Conn), u.Host, track)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		open = nil
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// pipeTLS completes c's handshake and copies bytes both ways between c and
// a new connection to upstream until either side closes.
func pipeTLS(c *tls.Conn, upstream string, track func(net.Conn) (func(), bool)) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		var plain tls.RecordHeaderError
		if errors.As(err, &plain) && plain.Conn != nil {
			io.WriteString(plain.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		return // refused handshakes are what the tests do
	}
	up, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", upstream)
	if err != nil {
		return
	}
	untrack, ok := track(up)
	if !ok {
		return
	}
	defer untrack()
	defer up.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}
