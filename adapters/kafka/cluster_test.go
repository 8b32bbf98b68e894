package kafka_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// killableListeners records the connections each kfake broker accepts, so
// a test can cut a broker off as a dead one is: its listener and every
// connection to it closed.
type killableListeners struct {
	mu    sync.Mutex
	conns map[string][]net.Conn // by listener address
}

func (k *killableListeners) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingListener{Listener: ln, k: k}, nil
}

type recordingListener struct {
	net.Listener
	k *killableListeners
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.k.mu.Lock()
		l.k.conns[l.Addr().String()] = append(l.k.conns[l.Addr().String()], c)
		l.k.mu.Unlock()
	}
	return c, err
}

// cut closes every connection the broker at addr accepted.
func (k *killableListeners) cut(addr string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns[addr] {
		_ = c.Close()
	}
	k.conns[addr] = nil
}

// Three brokers, topics with three partitions and three replicas, acks from
// all of them: mid-stream the broker that leads partition 0 (and, as the
// first seed, holds the clients' first connections) goes away, its
// partitions led by the others. No acknowledged message is lost, and the
// consumer group rebalances and carries on. kfake keeps one copy of the
// data for the whole cluster, so this tests the clients' failover (leader
// changes, dead connections, coordinator moves), not the brokers'
// replication.
func TestBrokerLossMidStreamLosesNothing(t *testing.T) {
	k := &killableListeners{conns: map[string][]net.Conn{}}
	c, err := kfake.NewCluster(kfake.Ports(testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)),
		kfake.ListenFn(k.listen), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	url := "kafka://" + strings.Join(addrs, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	open := func() *sdk.Client {
		opts := map[string]string{"partitions": "3", "replication_factor": "3", "publish_timeout": "60s"}
		for k, v := range fastGroups {
			opts[k] = v
		}
		cl, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: url, Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close(context.Background()) })
		return cl
	}
	pub, sub := open(), open()
	const topic = "orders"
	r := testenv.RunNodeLoss(t, ctx, testenv.NodeLoss{Pub: pub, Sub: sub, Topic: topic, Group: "billing",
		Total: 20_000, Batch: 50, KillAt: 10_000, Wait: 2 * time.Minute, Kill: func() {
			leader := c.LeaderFor(topic, 0)
			if leader < 0 {
				t.Errorf("no leader for %s/0", topic)
				return
			}
			if err := c.RemoveNode(leader); err != nil { // moves its partitions to the others
				t.Errorf("remove broker %d: %v", leader, err)
				return
			}
			k.cut(addrs[leader])
			t.Logf("broker %d (%s), leader of %s/0, removed; partition 0 now led by %d", leader, addrs[leader], topic, c.LeaderFor(topic, 0))
		}})
	t.Logf("broker loss mid-stream: %v", r)
	if r.Lost > 0 {
		t.Errorf("%d acknowledged messages were lost with the broker", r.Lost)
	}
	if r.PublishFailures > 0 {
		t.Errorf("%d messages failed to publish: the producer must fail over within publish_timeout", r.PublishFailures)
	}
}
