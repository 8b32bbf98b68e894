package nats_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A JetStream cluster of three servers, streams with three replicas: mid-
// stream the server that leads the topic's stream is killed (SIGKILL).
// Publisher and consumer reconnect to the others by themselves and no
// acknowledged message is lost; duplicates and gaps are reported
// (docs/operations.md).
func TestClusterServerLossLosesNothing(t *testing.T) {
	nodes := testenv.StartNATSCluster(t, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "nats://" + n.Addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	open := func() *sdk.Client {
		c, err := sdk.Open(ctx, sdk.Config{Driver: "nats", URL: strings.Join(urls, ","),
			Options: map[string]string{"replicas": "3", "publish_timeout": "60s", "ack_wait": "5s"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	pub, sub := open(), open()
	var nc *nats.Conn
	if !pub.As(&nc) {
		t.Fatal("the nats client does not reach its *nats.Conn")
	}
	r := testenv.RunNodeLoss(t, ctx, testenv.NodeLoss{Pub: pub, Sub: sub, Topic: "orders", Group: "billing",
		Total: 20_000, Batch: 50, KillAt: 10_000, Wait: 2 * time.Minute, Kill: func() {
			// The server that leads the topic's stream: its loss forces an
			// election, the hardest case for publish acks.
			js, err := jetstream.New(nc)
			if err != nil {
				t.Errorf("jetstream: %v", err)
				return
			}
			name, err := js.StreamNameBySubject(ctx, "orders")
			if err != nil {
				t.Errorf("the stream of orders: %v", err)
				return
			}
			st, err := js.Stream(ctx, name)
			if err != nil || st.CachedInfo().Cluster == nil {
				t.Errorf("stream %s info: %v", name, err)
				return
			}
			leader := st.CachedInfo().Cluster.Leader
			t.Logf("stream %s: %d replicas configured, leader %s, followers %d", name, st.CachedInfo().Config.Replicas, leader, len(st.CachedInfo().Cluster.Replicas))
			for i, n := range nodes {
				if leader == fmt.Sprintf("msgkit-n%d", i) {
					n.Kill(t)
					t.Logf("killed %s (%s), leader of stream %s; the publisher was on %s", leader, n.Addr, name, nc.ConnectedAddr())
					return
				}
			}
			t.Errorf("stream %s is led by %q, not one of the cluster's servers", name, leader)
		}})
	t.Logf("server loss mid-stream: %v", r)
	if r.Lost > 0 {
		t.Errorf("%d acknowledged messages were lost with the server", r.Lost)
	}
	if r.PublishFailures > 0 {
		t.Errorf("%d messages failed to publish: the publisher must fail over within publish_timeout", r.PublishFailures)
	}
}
