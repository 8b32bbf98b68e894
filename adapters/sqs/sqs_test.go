package sqs_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func open(ctx context.Context, endpoint string, extra map[string]string) (*testenv.Transport, error) {
	return testenv.Watermill(sqs.Driver{}.Open(ctx, sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(extra)}))
}

func TestConformance(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(ctx, endpoint, nil) },
	})
}

func TestConformanceFIFO(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return open(ctx, endpoint, map[string]string{"fifo": "true"})
		},
	})
}
