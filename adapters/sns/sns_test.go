package sns_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// testOptions point the driver at the emulator with static credentials
// (goaws accepts any) and short timings so redelivery tests stay fast.
func testOptions(extra map[string]string) map[string]string {
	o := map[string]string{"region": "us-east-1", "access_key_id": "test", "secret_access_key": "test",
		"visibility_timeout": "5s", "wait_time": "1s", "prefix": "ct-"}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

func open(ctx context.Context, endpoint string, extra map[string]string) (sdk.Transport, error) {
	return sns.Driver{}.Open(ctx, sdk.Config{Driver: "sns", URL: endpoint, Options: testOptions(extra)})
}

func TestConformance(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (sdk.Transport, error) { return open(ctx, endpoint, nil) },
	})
}
