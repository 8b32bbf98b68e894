package redis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func openDriver(t *testing.T, url string, opts map[string]string) driver.Transport {
	t.Helper()
	tr, err := msgredis.Driver{}.Open(context.Background(), sdk.Config{Driver: "redis", URL: url, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func publishN(t *testing.T, tr driver.Transport, topic string, n int) {
	t.Helper()
	for i := 0; i < n; i += 500 {
		batch := make([]*driver.Message, min(500, n-i))
		for j := range batch {
			batch[j] = &driver.Message{ID: uuid.NewString(), Payload: []byte(strconv.Itoa(i + j))}
		}
		if err := tr.SendBatch(context.Background(), topic, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// receive takes n messages from sub, failing after a bounded wait.
func receive(t *testing.T, sub driver.Subscription, n int) []*driver.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*driver.Message
	for len(got) < n {
		batch, err := sub.ReceiveBatch(ctx, n-len(got))
		if err != nil {
			t.Fatalf("received %d of %d messages: %v", len(got), n, err)
		}
		got = append(got, batch...)
	}
	return got
}

func ackIDs(msgs []*driver.Message) []driver.AckID {
	ids := make([]driver.AckID, len(msgs))
	for i, m := range msgs {
		ids[i] = m.AckID
	}
	return ids
}

// Entries every group acknowledged are trimmed; an entry one group has not
// acknowledged, or not read, stays.
func TestAcknowledgedEntriesAreTrimmed(t *testing.T) {
	url := testenv.Redis(t)
	raw := rawClient(t, url)
	ctx := context.Background()
	topic, _ := names("trim-acked")
	tr := openDriver(t, url, map[string]string{"trim_interval": "20ms", "batch_size": "500"})
	a, err := tr.OpenSubscription(ctx, topic, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.OpenSubscription(ctx, topic, "b")
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	publishN(t, tr, topic, n)
	if err := a.SendAcks(ctx, ackIDs(receive(t, a, n))); err != nil {
		t.Fatal(err)
	}
	held := receive(t, b, n/2) // read, the first 1000 acked below
	if err := b.SendAcks(ctx, ackIDs(held)); err != nil {
		t.Fatal(err)
	}
	// b has read 1000 and acked them, and not read the other 1000.
	testenv.Eventually(t, 10*time.Second, "the entries both groups acknowledged trimmed", func() bool {
		l, err := raw.XLen(ctx, topic).Result()
		return err == nil && l <= n/2+100 // approximate trimming keeps the rest of one node
	})
	rest := receive(t, b, n/2)
	for i, m := range rest {
		if want := strconv.Itoa(n/2 + i); string(m.Payload) != want {
			t.Fatalf("entry %d after the trim is %q, want %q: an unread entry was trimmed", n/2+i, m.Payload, want)
		}
	}
	// Read but not acknowledged: kept.
	time.Sleep(100 * time.Millisecond) // five trim intervals; nothing signals a trim that must not happen
	if l, _ := raw.XLen(ctx, topic).Result(); l < n/2 {
		t.Fatalf("XLEN %d: entries b holds unacknowledged were trimmed", l)
	}
	if err := b.SendAcks(ctx, ackIDs(rest)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "every entry acknowledged by both groups trimmed", func() bool {
		l, err := raw.XLen(ctx, topic).Result()
		return err == nil && l <= 100
	})
}

// trim_acked: false keeps what every group acknowledged.
func TestTrimAckedFalseKeepsEntries(t *testing.T) {
	url := testenv.Redis(t)
	ctx := context.Background()
	topic, _ := names("trim-off")
	tr := openDriver(t, url, map[string]string{"trim_acked": "false", "trim_interval": "10ms", "batch_size": "500"})
	a, err := tr.OpenSubscription(ctx, topic, "a")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, tr, topic, 1000)
	if err := a.SendAcks(ctx, ackIDs(receive(t, a, 1000))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ten trim intervals, had trimming been on
	if l, _ := rawClient(t, url).XLen(ctx, topic).Result(); l != 1000 {
		t.Fatalf("XLEN %d with trim_acked: false, want all 1000 entries kept", l)
	}
}

// A million messages published and consumed through a client keep the
// stream's memory flat: what the consumer acknowledged is trimmed as it
// goes, where an untrimmed stream would hold every entry.
func TestStreamMemoryStaysFlatOverAMillionMessages(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 100_000
	}
	url := testenv.Redis(t)
	raw := rawClient(t, url)
	ctx := context.Background()
	topic, group := names("flat")
	defer raw.Del(ctx, topic)
	tr := openDriver(t, url, map[string]string{"trim_interval": "200ms", "batch_size": "500"})
	c := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer c.Close(ctx)
	handled := make(chan struct{}, 1024)
	if _, err := c.Subscribe(ctx, topic, group, func(context.Context, *sdk.Message) error {
		handled <- struct{}{}
		return nil
	}, sdk.WithConcurrency(8)); err != nil {
		t.Fatal(err)
	}
	const window = 20_000 // the most published and not yet handled
	var done, peakLen int
	var peakMem int64
	sample := func() {
		l, err1 := raw.XLen(ctx, topic).Result()
		m, err2 := raw.MemoryUsage(ctx, topic, 0).Result()
		if err1 != nil || err2 != nil {
			t.Fatalf("XLEN / MEMORY USAGE: %v %v", err1, err2)
		}
		peakLen, peakMem = max(peakLen, int(l)), max(peakMem, m)
	}
	wait := func(upTo int) {
		deadline := time.After(60 * time.Second)
		for done < upTo {
			select {
			case <-handled:
				done++
			case <-deadline:
				t.Fatalf("handled %d of %d messages in 60s", done, upTo)
			}
		}
	}
	for sent := 0; sent < total; sent += 1000 {
		msgs := make([]*sdk.Message, 1000)
		for i := range msgs {
			msgs[i] = sdk.NewMessage([]byte(fmt.Sprintf("payload of message %d, about a hundred bytes, as an event would be.............", sent+i)))
		}
		if err := c.Publish(ctx, topic, msgs...); err != nil {
			t.Fatal(err)
		}
		wait(sent + 1000 - window)
		if sent%50_000 == 0 {
			sample()
		}
	}
	wait(total)
	testenv.Eventually(t, 10*time.Second, "the last acknowledged entries trimmed", func() bool {
		l, err := raw.XLen(ctx, topic).Result()
		return err == nil && l <= 200
	})
	sample()
	t.Logf("%d messages: peak stream length %d entries, peak MEMORY USAGE %d bytes", total, peakLen, peakMem)
	// Untrimmed, the stream would hold every entry: about 150 bytes each.
	if peakLen > total/10 || peakMem > int64(total)*150/10 {
		t.Fatalf("the stream grew with the messages: peak %d entries, %d bytes, for %d messages consumed as they came", peakLen, peakMem, total)
	}
}
