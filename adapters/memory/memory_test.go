package memory_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// Each test gets its own named broker, so the transports the suite opens
// within one test (for example a second client) share it.
func harness() conformance.Harness {
	return conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return memory.Driver{}.Open(ctx, sdk.Config{URL: "memory://conformance-" + sanitize(t.Name())})
		},
	}
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

func TestConformance(t *testing.T) {
	conformance.Run(t, harness())
}
