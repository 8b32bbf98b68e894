package sns_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func open(ctx context.Context, endpoint string, extra map[string]string) (*testenv.Transport, error) {
	return testenv.Watermill(sns.Driver{}.Open(ctx, sdk.Config{Driver: "sns", URL: endpoint, Options: testenv.AWSOptions(extra)}))
}

func TestConformance(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open:       func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(ctx, endpoint, nil) },
		OpenConfig: sns.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: "sns", URL: "http://" + addr,
				Options: testenv.AWSOptions(map[string]string{"secret_access_key": "s3cret-in-the-url"})}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: "sns", URL: testenv.ProxiedURL(endpoint, proxy), Options: testenv.AWSOptions(nil)}
		},
	})
}
