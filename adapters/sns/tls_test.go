package sns_test

import (
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
)

// TestTLS runs the shared TLS suite against an HTTPS endpoint that
// requires a client certificate (a TLS-terminating proxy in front of the
// emulator), with a CA made for the test.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	addr := testenv.StartTLSProxy(t, f, testenv.AWSEndpoint(t))
	testenv.RunTLSSuite(t, testenv.TLSSuite{Driver: "sns", Files: f, Addr: addr,
		TLSURL: "https://" + addr, PlainURL: "http://" + addr, PlainHint: "write https://",
		Options: testenv.AWSOptions(nil)})
}
