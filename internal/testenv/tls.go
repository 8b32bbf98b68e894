package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
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

// StartTLSProxy serves HTTPS on a loopback port with f's server
// certificate, requiring a client certificate signed by f.CA, and forwards
// every request to target (http://host:port), as a TLS-terminating load
// balancer in front of an HTTP API would. It returns host:port and stops
// when the test ends.
func StartTLSProxy(t testing.TB, f TLSFiles, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	// A fresh upstream connection per request: a kept-alive one that the
	// emulator closes as the proxy reuses it cut a response short once
	// (200, then EOF in the body), which no client can retry.
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	srv := httptest.NewUnstartedServer(proxy)
	srv.TLS = f.ServerConfig(t, true)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are what the tests do
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
