package rabbitmq_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A three-node cluster with quorum queues: 20,000 messages, and mid-stream
// the node the publisher and the consumer are connected to stops. Both
// fail over to another node by themselves; no confirmed message is lost.
// The gap and the duplicates are reported (docs/operations.md).
func TestClusterNodeLossLosesNothing(t *testing.T) {
	nodes := testenv.StartRabbitMQCluster(t, 3)
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.AMQPAddr
	}
	url := "amqp://guest:guest@" + strings.Join(addrs, ",") + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	open := func() *sdk.Client {
		c, err := sdk.Open(ctx, sdk.Config{Driver: "rabbitmq", URL: url, Options: map[string]string{"queue_type": "quorum", "publish_timeout": "60s"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	pub, sub := open(), open()
	if out, err := nodes[0].Ctl(ctx, "list_connections", "node", "name"); err == nil {
		t.Logf("connections before the node stops:\n%s", out)
	}
	r := testenv.RunNodeLoss(t, ctx, testenv.NodeLoss{Pub: pub, Sub: sub, Topic: "orders", Group: "billing",
		Total: 20_000, Batch: 50, KillAt: 5_000, Kill: func() { nodes[0].Stop(t) }, Wait: 2 * time.Minute})
	t.Logf("node loss mid-stream: %v", r)
	if r.Lost > 0 {
		t.Errorf("%d confirmed messages were lost with the node", r.Lost)
	}
	if r.PublishFailures > 0 {
		t.Errorf("%d messages failed to publish: the publisher must fail over within publish_timeout", r.PublishFailures)
	}
}
