package redis_test

import (
	"context"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The suite's persistence guarantee, on a private server with the
// append-only file on, stopped (SIGTERM) and started again.
func TestConformancePersistence(t *testing.T) {
	srv := startPrivateRedis(t)
	url := "redis://" + srv.addr() + "/0"
	conformance.Run(t, conformance.Harness{
		Open: func(context.Context, *testing.T) (driver.Transport, error) {
			return openTransport(url, map[string]string{"publish_timeout": "60s"})
		},
		Only: []string{"TestPersistentMessagesSurviveARestart"},
		Restart: func(context.Context) error {
			srv.stop()
			srv.start()
			return nil
		},
	})
}
