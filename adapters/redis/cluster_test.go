package redis_test

import (
	"context"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The whole conformance suite (streams, groups, claims, reply streams)
// against a Redis Cluster of three primaries: every command of one
// message is on the one key of its topic's stream, so the slots spread
// topics over the nodes and nothing needs hash tags.
func TestClusterConformance(t *testing.T) {
	nodes := testenv.StartRedisCluster(t, 3)
	url := "redis+cluster://" + strings.Join(nodes, ",")
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			tr, err := msgredis.Driver{}.Open(ctx, sdk.Config{Driver: "redis", URL: url, Options: map[string]string{"batch_size": "10"}})
			if err == nil {
				var cc *goredis.ClusterClient
				if !tr.(interface{ As(any) bool }).As(&cc) {
					t.Fatal("a redis+cluster:// transport must reach a *goredis.ClusterClient")
				}
			}
			return tr, err
		},
	})
}
