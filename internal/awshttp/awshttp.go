// Package awshttp holds the HTTP transport fix the AWS drivers (and the
// benchmarks' raw AWS clients) need.
package awshttp

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// DetachedBody wraps a transport so that it gets its own copy of each
// request body.
//
// smithy-go closes the body it built as soon as the response headers
// arrive. When the transport's writer has not made its last read of it yet
// (an endpoint that answers at once, as on loopback), the writer fails and
// closes the connection under the response being read, and the SDK retries
// (aws/aws-sdk-go-v2#2737). A retried ReceiveMessage leaves the first
// attempt's messages invisible for a whole visibility timeout: against the
// emulator, about one receive in a hundred. The copy costs one allocation
// per API call.
func DetachedBody(next http.RoundTripper) http.RoundTripper { return detachedBody{next} }

type detachedBody struct{ next http.RoundTripper }

func (d detachedBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return d.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	c := r.Clone(r.Context())
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	c.ContentLength = int64(len(body))
	return d.next.RoundTrip(c)
}
