package rabbitmq_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

	const total, batch, stopAt = 20_000, 50, 5_000
	var (
		mu        sync.Mutex
		received  = map[string]int{}
		lastRecv  time.Time
		recvGap   time.Duration
		allIn     = make(chan struct{})
		confirmed = map[string]bool{}
	)
	if _, err := sub.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !lastRecv.IsZero() {
			recvGap = max(recvGap, now.Sub(lastRecv))
		}
		lastRecv = now
		received[m.ID]++
		if len(received) == total {
			close(allIn)
		}
		return nil
	}, sdk.WithConcurrency(8)); err != nil {
		t.Fatal(err)
	}
	if out, err := nodes[0].Ctl(ctx, "list_connections", "node"); err == nil {
		t.Logf("connections before the node stops, by node:\n%s", out)
	}

	stopped := make(chan struct{})
	var pubGap time.Duration
	last := time.Now()
	failed := 0
	for i := 0; i < total; i += batch {
		if i == stopAt {
			go func() { defer close(stopped); nodes[0].Stop(t) }()
		}
		msgs := make([]*sdk.Message, batch)
		for j := range msgs {
			msgs[j] = sdk.NewMessage([]byte(fmt.Sprint(i + j)))
		}
		if err := pub.Publish(ctx, "orders", msgs...); err != nil {
			failed += batch
			t.Logf("publish of messages %d-%d failed: %v", i, i+batch-1, err)
			continue
		}
		now := time.Now()
		pubGap, last = max(pubGap, now.Sub(last)), now
		mu.Lock()
		for _, m := range msgs {
			confirmed[m.ID] = true
		}
		mu.Unlock()
	}
	<-stopped
	select {
	case <-allIn:
	case <-time.After(2 * time.Minute):
	}
	mu.Lock()
	defer mu.Unlock()
	lost, dups := 0, 0
	for id := range confirmed {
		if received[id] == 0 {
			lost++
		}
	}
	for _, n := range received {
		dups += n - 1
	}
	t.Logf("node loss mid-stream: %d published, %d confirmed, %d publish failures, %d confirmed lost, %d duplicates delivered; longest publish gap %v, longest delivery gap %v",
		total, len(confirmed), failed, lost, dups, pubGap.Round(time.Millisecond), recvGap.Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d confirmed messages were lost with the node", lost)
	}
	if failed > 0 {
		t.Errorf("%d messages failed to publish: the publisher must fail over within publish_timeout", failed)
	}
}
