package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// TestMain lets the test binary double as the consumer process that the
// crash test kills with SIGKILL while it holds a batch of unacked messages.
// killedOptions give the killed-consumer conformance run a short lease:
// another member claims what a dead one held after claim_idle.
var killedOptions = map[string]string{"claim_idle": "2s", "claim_interval": "500ms", "batch_size": "10"}

func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(context.Context) (driver.Transport, error) {
		return openTransport(testenv.Getenv("MSGKIT_TEST_REDIS_URL", testenv.DefaultRedisURL), killedOptions)
	})
	testenv.RunDyingConsumer(func(url string) (driver.Transport, error) {
		return testenv.Watermill(msgredis.Driver{}.Open(context.Background(), sdk.Config{Driver: "redis", URL: url, Options: map[string]string{"batch_size": "10"}}))
	})
	os.Exit(m.Run())
}

func names(prefix string) (topic, group string) {
	id := uuid.NewString()[:8]
	return "ct-" + prefix + "-" + id, "g-" + id
}

func rawClient(t *testing.T, url string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// The scenario of watermill-redisstream issue #24: a consumer dies holding
// several pending messages; every one of them must reach another consumer.
func TestConsumerKilledWithPendingBatchLosesNothing(t *testing.T) {
	url := testenv.Redis(t)
	topic, group := names("crash")
	tr, err := open(t, url, map[string]string{"claim_idle": "500ms", "claim_interval": "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := rawClient(t, url).XGroupCreateMkStream(context.Background(), topic, group, "$").Err(); err != nil {
		t.Fatal(err)
	}
	// Published before the consumer starts, so its first read takes all
	// ten: a consumer already blocked in XREADGROUP would be woken by the
	// first XADD and could hold fewer.
	sent := make([]*message.Message, 10)
	for i := range sent {
		sent[i] = message.NewMessage(uuid.NewString(), []byte(strconv.Itoa(i)))
	}
	if err := tr.Publisher().Publish(topic, sent...); err != nil {
		t.Fatal(err)
	}
	testenv.StartDyingConsumer(t, url, topic, group).Killed()
	pending, err := rawClient(t, url).XPending(context.Background(), topic, group).Result()
	if err != nil || pending.Count != 10 {
		t.Fatalf("the dead consumer should hold all 10 messages pending (one batch), XPENDING says %+v, %v", pending, err)
	}

	sub, _ := tr.Subscriber(group)
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < len(sent) {
		select {
		case m := <-ch:
			seen[m.UUID] = true
			m.Ack()
		case <-deadline:
			t.Fatalf("only %d of the dead consumer's 10 pending messages were claimed and redelivered", len(seen))
		}
	}
	for _, m := range sent {
		if !seen[m.UUID] {
			t.Fatalf("message %s was lost", m.UUID)
		}
	}
}

// privateRedis runs a redis-server of the test's own on a free loopback
// port, writing an append-only file with fsync on every write, so that a
// restart keeps every acknowledged entry.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T, extra ...string) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if testenv.InCI() {
			t.Fatal("CI=true and redis-server is not installed")
		}
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	r.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", r.dir, "--appendonly", "yes",
		"--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", ""}, extra...)
	r.cmd = exec.Command(bin, r.args...)
	r.start()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.cmd.Path, r.args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	testenv.Eventually(r.t, 10*time.Second, "the private redis-server to listen", func() bool {
		c, err := net.Dial("tcp", r.addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop shuts the server down with SIGTERM, which flushes the append-only
// file. A server refuses SIGTERM while it writes its first append-only
// file ("Writing initial AOF, can't exit": after it became a replica, for
// one), and does not try again, so SIGTERM is sent every second; after
// 15 s it is killed (with appendfsync always, no acknowledged write is
// lost).
func (r *privateRedis) stop() {
	if r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return
	}
	exited := make(chan struct{})
	go func() {
		_ = r.cmd.Wait()
		close(exited)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	giveUp := time.After(15 * time.Second)
	for waiting := true; waiting; {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return
		case <-tick.C:
		case <-giveUp:
			waiting = false
		}
	}
	r.t.Logf("the private redis-server on %s did not exit within 15s of SIGTERM; killing it", r.addr())
	_ = r.cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		r.t.Errorf("the private redis-server on %s did not exit within 15s of SIGKILL", r.addr())
	}
}

func (r *privateRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func TestServerRestartMidStreamLosesNothing(t *testing.T) {
	srv := startPrivateRedis(t)
	url := "redis://" + srv.addr() + "/0"
	topic, group := names("restart")
	tr, err := open(t, url, map[string]string{"publish_timeout": "60s"})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Capabilities().Persistent {
		t.Fatal("a server with appendonly yes must be declared Persistent")
	}
	client := sdk.NewClient(tr, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	// Resume well under claim_idle (30s): entries the server assigned to the
	// consumer while the connection dropped must be recovered at once, not
	// left for another member to claim.
	testenv.RestartMidStream(t, client, topic, group, 15*time.Second, func() []string {
		srv.stop()
		// A publish issued while the server is down must wait for it, not fail.
		during := sdk.NewMessage([]byte("published during the outage"))
		duringErr := make(chan error, 1)
		go func() { duringErr <- client.Publish(context.Background(), topic, during) }()
		select {
		case err := <-duringErr:
			t.Fatalf("a publish while the server was down returned before it came back: %v", err)
		case <-time.After(300 * time.Millisecond):
		}
		srv.start()
		if err := <-duringErr; err != nil {
			t.Fatalf("the publish issued during the outage failed: %v", err)
		}
		return []string{during.ID}
	})
	if err := client.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestWrongPasswordNamesHostAndCauseButNotPassword(t *testing.T) {
	srv := startPrivateRedis(t, "--requirepass", "right-secret")
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: "redis://:Wr0ngPassw0rd@" + srv.addr() + "/0"})
	if err == nil {
		t.Fatal("open with a wrong password succeeded")
	}
	for _, want := range []string{srv.addr(), "check the credentials"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error should contain %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "Wr0ngPassw0rd") {
		t.Fatalf("the password leaked: %v", err)
	}
	_, err = sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: "redis://" + srv.addr() + "/0"})
	if err == nil || !strings.Contains(err.Error(), "requires a password") {
		t.Fatalf("a missing password should say the server requires one, got %v", err)
	}
	tr, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: "redis://:right-secret@" + srv.addr() + "/0"})
	if err != nil {
		t.Fatalf("the right password should work: %v", err)
	}
	tr.Close(context.Background())
}

func TestUnreachableServerNamesHost(t *testing.T) {
	_, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: "redis://:S3cret@127.0.0.1:1/0"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "is Redis running") {
		t.Fatalf("want an error naming the host and the likely cause, got %v", err)
	}
	if strings.Contains(err.Error(), "S3cret") {
		t.Fatalf("the password leaked: %v", err)
	}
}

func TestBadConfigIsReportedBeforeConnecting(t *testing.T) {
	cases := []struct {
		url     string
		options map[string]string
		want    string
	}{
		{"", nil, `key "url": the redis driver needs the server's URL`},
		{"amqp://h/", nil, "want redis://[user:password@]host:port/db"},
		{"redis://h/0", map[string]string{"batch_size": "0"}, "must be at least 1"},
		{"redis://h/0", map[string]string{"new_group_start": "first"}, "want oldest or latest (oldest: a new group"},
		{"redis://h/0", map[string]string{"max_len": "10", "retention": "1h"}, "not both"},
		{"redis://h/0", map[string]string{"claim_idle": "soon"}, "want a duration"},
		{"redis://h/0", map[string]string{"prefetch": "10"}, `driver "redis" has no option "prefetch"`},
	}
	for _, c := range cases {
		_, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: c.url, Options: c.options})
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("url=%q options=%v: want a *ConfigError containing %q, got %v", c.url, c.options, c.want, err)
		}
	}
}

func TestMaxLenTrimsTheStream(t *testing.T) {
	url := testenv.Redis(t)
	topic, _ := names("trim")
	tr, err := open(t, url, map[string]string{"max_len": "100"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for i := 0; i < 20; i++ {
		batch := make([]*message.Message, 50)
		for j := range batch {
			batch[j] = message.NewMessage(uuid.NewString(), []byte("x"))
		}
		if err := tr.Publisher().Publish(topic, batch...); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rawClient(t, url).XLen(context.Background(), topic).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Approximate trimming removes whole macro nodes (100 entries by default).
	if n < 100 || n > 300 {
		t.Fatalf("XLEN = %d after 1000 messages with max_len 100; want about 100", n)
	}
}

func TestEntriesFromOtherProducersAreDelivered(t *testing.T) {
	url := testenv.Redis(t)
	topic, group := names("foreign")
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	sub, _ := tr.Subscriber(group)
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t, url).XAdd(context.Background(), &goredis.XAddArgs{Stream: topic,
		Values: []any{"id", "py-1", "payload", "\x00\xffraw", "h:ce-type", "invoice.paid", "legacy_field", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		m.Ack()
		got := sdk.FromWatermill(m)
		if got.ID != "py-1" || string(got.Payload) != "\x00\xffraw" || got.EventType != "invoice.paid" || got.Metadata["legacy_field"] != "v" {
			t.Fatalf("entry not decoded as documented: %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an entry written by another producer was not delivered")
	}
}

// An entry without an id field (a non-Go producer) gets its stream entry id,
// the same on every redelivery.
func TestEntryWithoutIDGetsItsEntryID(t *testing.T) {
	url := testenv.Redis(t)
	topic, group := names("noid")
	c := sdk.NewClient(mustTransport(t, url), sdk.WithLogger(quietLogger()))
	defer c.Close(context.Background())
	got := make(chan string, 4)
	calls := 0
	if _, err := c.Subscribe(context.Background(), topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- m.ID
		if calls++; calls == 1 {
			return errors.New("fail once, to see the redelivery's id")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	entry, err := rawClient(t, url).XAdd(context.Background(), &goredis.XAddArgs{Stream: topic, Values: []any{"payload", "x"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	first, again := testenv.Await(t, got, "the delivery"), testenv.Await(t, got, "the redelivery")
	if first != entry || again != entry {
		t.Fatalf("an entry without an id must get its entry id %s on every delivery, got %q then %q", entry, first, again)
	}
}

// The stream and group vanish and the connections drop, as when a server
// without persistence restarts: the consumer creates its group again and
// receives what is published afterwards.
func TestGroupLostWithTheServerIsCreatedAgain(t *testing.T) {
	url := testenv.Redis(t)
	topic, group := names("nogroup")
	c := sdk.NewClient(mustTransport(t, url), sdk.WithLogger(quietLogger()))
	defer c.Close(context.Background())
	got := make(chan string, 4)
	if _, err := c.Subscribe(context.Background(), topic, group, func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, url)
	ctx := context.Background()
	if err := raw.Del(ctx, topic).Err(); err != nil {
		t.Fatal(err)
	}
	// Drop every other client's connection: the reader's XREADGROUP fails,
	// and the consumer first re-reads its own pending entries (NOGROUP now).
	if err := raw.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := c.Publish(ctx, topic, sdk.NewMessage([]byte("after"))); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if p != "after" {
				t.Fatalf("unexpected message %q", p)
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("after 20s no message published after the group was lost has arrived: the consumer did not create its group again")
		}
	}
}

func mustTransport(t *testing.T, url string) driver.Transport {
	t.Helper()
	tr, err := open(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// New runs on the caller's client, reaches it through As, leaves it open
// on Close, and names a bad option.
func TestNewOnTheCallersClient(t *testing.T) {
	url := testenv.Redis(t)
	client := rawClient(t, url)
	ctx := context.Background()
	var ce *sdk.ConfigError
	if _, err := msgredis.New(ctx, client, msgredis.Options{MaxLen: 10, Retention: time.Hour}); !errors.As(err, &ce) || ce.Key != "options.retention" {
		t.Fatalf("max_len and retention together must be a ConfigError naming retention, got %v", err)
	}
	if _, err := msgredis.New(ctx, client, msgredis.Options{NewGroupStart: "first"}); !errors.As(err, &ce) || ce.Key != "options.new_group_start" {
		t.Fatalf("a bad new_group_start must be a ConfigError naming it, got %v", err)
	}
	tr, err := msgredis.New(ctx, client, msgredis.Options{BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got *goredis.Client
	if !tr.As(&got) || got != client {
		t.Fatal("As must reach the client New was given")
	}
	topic, _ := names("new")
	testenv.RoundTrip(t, tr, topic)
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("closing the transport must leave the caller's client open: %v", err)
	}
}

// A refusal fails the publish at once, whatever the topic is called: a
// topic whose name holds the words of a transient failure (LOADING,
// "connection refused", "broken pipe") is not retried until
// publish_timeout.
func TestARefusalIsNotRetriedWhateverTheTopicIsCalled(t *testing.T) {
	url := testenv.Redis(t)
	raw := rawClient(t, url)
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: url, Options: map[string]string{"publish_timeout": "20s"}},
		sdk.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, name := range []string{"LOADING-dock", "connection refused", "broken pipe"} {
		topic, _ := names(name)
		t.Cleanup(func() { raw.Del(context.Background(), topic) })
		// A string where the stream should be: every XADD gets WRONGTYPE.
		if err := raw.Set(context.Background(), topic, "not a stream", 0).Err(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := c.Publish(ctx, topic, sdk.NewMessage([]byte("x")))
		took := time.Since(start)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Fatalf("topic %q: want the server's WRONGTYPE refusal, got %v", topic, err)
		}
		if took > 10*time.Second {
			t.Fatalf("topic %q: the refusal took %v: it was retried as if transient (%v)", topic, took, err)
		}
	}
}
