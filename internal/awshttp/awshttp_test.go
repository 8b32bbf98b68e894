package awshttp

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// closingBody fails every read after Close, as smithy-go's request body does.
type closingBody struct {
	r      io.Reader
	closed bool
}

func (b *closingBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read on closed body")
	}
	return b.r.Read(p)
}

func (b *closingBody) Close() error { b.closed = true; return nil }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportReadsItsOwnCopyAfterTheCallerClosesTheBody(t *testing.T) {
	orig := &closingBody{r: strings.NewReader(`{"QueueUrl":"q"}`)}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", orig)
	var sent string
	rt := DetachedBody(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		_ = orig.Close() // the caller closes its body while the transport still writes
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("the transport's body must not depend on the caller's: %v", err)
		}
		sent = string(b)
		if r.ContentLength != int64(len(b)) {
			t.Fatalf("content length %d for a body of %d bytes", r.ContentLength, len(b))
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if sent != `{"QueueUrl":"q"}` {
		t.Fatalf("sent %q", sent)
	}
	if req.Body != orig {
		t.Fatal("a RoundTripper must not modify the caller's request")
	}
}
