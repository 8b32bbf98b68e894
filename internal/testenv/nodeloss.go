package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// NodeLoss describes a failover run: Total messages published on Topic in
// batches of Batch by Pub and consumed by Sub as Group, with Kill run
// (concurrently) once KillAt messages have been published.
type NodeLoss struct {
	Pub, Sub             *sdk.Client
	Topic, Group         string
	Total, Batch, KillAt int
	Kill                 func()
	// Wait bounds the wait for the last messages after publishing ends.
	Wait time.Duration
}

// NodeLossReport is what a node loss cost.
type NodeLossReport struct {
	Published, Confirmed, PublishFailures int
	Lost, Duplicates                      int
	PublishGap, DeliveryGap               time.Duration // the longest pause between successful publishes, and between deliveries
}

func (r NodeLossReport) String() string {
	return fmt.Sprintf("%d published, %d confirmed, %d publish failures, %d confirmed lost, %d duplicates delivered; longest publish gap %v, longest delivery gap %v",
		r.Published, r.Confirmed, r.PublishFailures, r.Lost, r.Duplicates, r.PublishGap.Round(time.Millisecond), r.DeliveryGap.Round(time.Millisecond))
}

// RunNodeLoss runs n and reports what the node loss cost. It subscribes
// before publishing, so every message is the group's.
func RunNodeLoss(t testing.TB, ctx context.Context, n NodeLoss) NodeLossReport {
	t.Helper()
	var (
		mu       sync.Mutex
		received = map[string]int{}
		lastRecv time.Time
		r        = NodeLossReport{Published: n.Total}
		allIn    = make(chan struct{})
	)
	if _, err := n.Sub.Subscribe(ctx, n.Topic, n.Group, func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !lastRecv.IsZero() {
			r.DeliveryGap = max(r.DeliveryGap, now.Sub(lastRecv))
		}
		lastRecv = now
		received[m.ID]++
		if received[m.ID] == 1 && len(received) == n.Total {
			close(allIn)
		}
		return nil
	}, sdk.WithConcurrency(8)); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	killed := make(chan struct{})
	confirmed := map[string]bool{}
	last := time.Now()
	for i := 0; i < n.Total; i += n.Batch {
		if i == n.KillAt {
			go func() { defer close(killed); n.Kill() }()
		}
		msgs := make([]*sdk.Message, min(n.Batch, n.Total-i))
		for j := range msgs {
			msgs[j] = sdk.NewMessage([]byte(fmt.Sprint(i + j)))
		}
		if err := n.Pub.Publish(ctx, n.Topic, msgs...); err != nil {
			r.PublishFailures += len(msgs)
			t.Logf("publish of messages %d-%d failed: %v", i, i+len(msgs)-1, err)
			continue
		}
		now := time.Now()
		r.PublishGap, last = max(r.PublishGap, now.Sub(last)), now
		for _, m := range msgs {
			confirmed[m.ID] = true
		}
	}
	<-killed
	select {
	case <-allIn:
	case <-time.After(n.Wait):
	}
	mu.Lock()
	defer mu.Unlock()
	r.Confirmed = len(confirmed)
	for id := range confirmed {
		if received[id] == 0 {
			r.Lost++
		}
	}
	for _, c := range received {
		r.Duplicates += c - 1
	}
	return r
}
