package kafka_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// 64 goroutines publishing one message per call, again and again, behind a
// 20 ms round trip: the publishes one call's answer releases come back at
// once and must share the next produce request (8 records a request
// without sharing; 32 when the publishers that come back one by one split
// into a call of one and a call of the rest).
func TestConcurrentPublishesShareProduceRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, produces, records := openBehindRoundTrip(t, ctx, "sharing", 3)
	const goroutines, each = 64, 40
	// Measured from when every goroutine's first publish has returned until
	// the first goroutine is done: the run-up and the tail have fewer
	// publishers.
	type snapshot struct{ produces, records int64 }
	a, b := testenv.SteadyPublishing(t, goroutines, each,
		func() error { return client.Publish(ctx, "sharing", &sdk.Message{Payload: []byte("x")}) },
		func() snapshot { return snapshot{produces.Load(), records.Load()} })
	if got := records.Load(); got < goroutines*each {
		t.Fatalf("%d messages published, %d records produced", goroutines*each, got)
	}
	if b.produces-a.produces < 10 {
		t.Fatalf("the 64 goroutines never published together for 10 produce requests (from %+v to %+v): the run is too short to measure", a, b)
	}
	perRequest := float64(b.records-a.records) / float64(b.produces-a.produces)
	t.Logf("%d goroutines publishing one message at a time: %.1f records per produce request while all publish (%d requests)",
		goroutines, perRequest, b.produces-a.produces)
	if perRequest < 48 {
		t.Fatalf("%.1f records per produce request while all 64 goroutines publish; want at least 48 (%d requests for %d records)",
			perRequest, b.produces-a.produces, b.records-a.records)
	}
}

// openBehindRoundTrip starts a kfake cluster whose answers come 20 ms
// late, with topic made with partitions, and opens a client on it. It
// counts the cluster's produce requests and the records they carry.
func openBehindRoundTrip(t *testing.T, ctx context.Context, topic string, partitions int32) (client *sdk.Client, produces, records *atomic.Int64) {
	c := startCluster(t, kfake.ListenFn(func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		return delayedListener{ln, 20 * time.Millisecond}, err
	}), kfake.SeedTopics(partitions, topic))
	produces, records = new(atomic.Int64), new(atomic.Int64)
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				var b kmsg.RecordBatch
				if err := b.ReadFrom(p.Records); err == nil {
					records.Add(int64(b.NumRecords))
				}
			}
		}
		produces.Add(1)
		return nil, nil, false // kfake answers as usual
	})
	client, err := sdk.Open(ctx, sdk.Config{Driver: "kafka", URL: "kafka://" + c.ListenAddrs()[0]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(context.Background()) })
	return client, produces, records
}

// delayedListener delays everything its connections write by d, in order
// and without holding up later writes: a round trip d longer, with
// requests still pipelined.
type delayedListener struct {
	net.Listener
	d time.Duration
}

func (l delayedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &delayedConn{Conn: c, d: l.d, out: make(chan delayedWrite, 1024), closed: make(chan struct{})}
	go dc.deliver()
	return dc, nil
}

type delayedWrite struct {
	due time.Time
	b   []byte
}

type delayedConn struct {
	net.Conn
	d      time.Duration
	out    chan delayedWrite
	once   sync.Once
	closed chan struct{}
}

func (c *delayedConn) Write(p []byte) (int, error) {
	select {
	case c.out <- delayedWrite{time.Now().Add(c.d), append([]byte(nil), p...)}:
		return len(p), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *delayedConn) deliver() {
	for {
		select {
		case w := <-c.out:
			select {
			case <-time.After(time.Until(w.due)):
			case <-c.closed:
				return
			}
			if _, err := c.Conn.Write(w.b); err != nil {
				return
			}
		case <-c.closed:
			return
		}
	}
}

func (c *delayedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// A message the driver refuses fails alone when it shares a producer call
// with other publishes: the others are sent, and only its publish returns
// the error.
func TestRefusedMessageInASharedCallFailsAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, produces, records := openBehindRoundTrip(t, ctx, "shared-refusal", 1)
	// The first publish takes the call slot for a round trip; the rest
	// queue behind it and go in one call.
	const publishes, bad = 21, 10
	errs := make([]error, publishes)
	var wg sync.WaitGroup
	for i := range publishes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &sdk.Message{Payload: []byte("x")}
			if i == bad {
				m.Metadata = map[string]string{"_watermill_message_uuid": "another-id"}
			}
			errs[i] = client.Publish(ctx, "shared-refusal", m)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == bad && (err == nil || !strings.Contains(err.Error(), "_watermill_message_uuid")):
			t.Errorf("the publish with a reserved header returned %v; want its refusal, naming the header", err)
		case i != bad && err != nil:
			t.Errorf("publish %d, sharing a call with a refused message, failed: %v", i, err)
		}
	}
	if got := records.Load(); got != publishes-1 {
		t.Errorf("%d records produced; want the %d not refused", got, publishes-1)
	}
	if n := produces.Load(); n > 3 {
		t.Errorf("%d produce requests for %d concurrent publishes: they did not share requests, so this test did not test what it says", n, publishes)
	}
}
