package redis_test

import (
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
)

// TestTLS runs a private redis-server that listens only with TLS and
// requires a client certificate, with a CA made for the test.
func TestTLS(t *testing.T) {
	f := testenv.NewTLSFiles(t, "")
	addr := testenv.StartRedisTLS(t, f)
	testenv.RunTLSSuite(t, testenv.TLSSuite{Driver: "redis", Files: f, Addr: addr,
		TLSURL: "rediss://" + addr + "/0", PlainURL: "redis://" + addr + "/0", PlainHint: "write rediss://"})
}
