package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// RestartMidStream checks that a broker restart loses nothing: it consumes
// topic in group, publishes without pause before, during and after
// restart(), and fails unless every message whose Publish returned nil is
// consumed within resume of the publishing ending. A Publish that meets the
// outage must wait for the broker, not fail. restart may publish messages
// of its own and returns their ids, to be checked too.
func RestartMidStream(t *testing.T, client *sdk.Client, topic, group string, resume time.Duration, restart func() []string) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	progress := make(chan struct{}, 1)
	if _, err := client.Subscribe(context.Background(), topic, group, func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		seen[m.ID]++
		mu.Unlock()
		select {
		case progress <- struct{}{}:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	published := make(chan string, 100000)
	pubErr := make(chan error, 1)
	restarted := make(chan struct{})
	go func() {
		defer close(published)
		after := 0
		for i := 0; after < 200; i++ {
			select {
			case <-restarted:
				after++
			default:
			}
			m := sdk.NewMessage([]byte(fmt.Sprintf("msg-%d", i)))
			if err := client.Publish(context.Background(), topic, m); err != nil {
				pubErr <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
			published <- m.ID
		}
	}()
	<-progress // consumption is going
	ids := restart()
	close(restarted)
	for id := range published {
		ids = append(ids, id)
	}
	select {
	case err := <-pubErr:
		t.Fatalf("a publish across the restart failed (it must wait for the broker): %v", err)
	default:
	}
	t.Logf("%d messages published across the restart", len(ids))
	Eventually(t, resume, "every published message to be consumed after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
}
