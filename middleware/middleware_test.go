package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/adapters/memory"
	_ "github.com/msgkit/msgkit/adapters/rabbitmq"
	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// broker is one client on the broker under test, with unique topic names
// whose queues are removed after the test.
type broker struct {
	t      *testing.T
	client *sdk.Client
	prefix string
}

func (b *broker) topic(name string) string { return b.prefix + name }

// eachBroker runs f on the in-process broker, on RabbitMQ and on Redis
// Streams (whose new groups start at the latest entry).
func eachBroker(t *testing.T, f func(t *testing.T, b *broker)) {
	t.Run("memory", func(t *testing.T) { f(t, newBroker(t, sdk.Config{})) })
	t.Run("rabbitmq", func(t *testing.T) {
		url := testenv.RabbitMQ(t)
		b := newBroker(t, sdk.Config{Driver: "rabbitmq", URL: url})
		t.Cleanup(func() { deleteRabbitTopology(url, b.prefix) })
		f(t, b)
	})
	t.Run("redis", func(t *testing.T) {
		url := testenv.Redis(t)
		var b *broker
		t.Cleanup(func() { deleteRedisStreams(url, b.prefix) }) // after the client has closed
		b = newBroker(t, sdk.Config{Driver: "redis", URL: url})
		f(t, b)
	})
}

func deleteRedisStreams(url, prefix string) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if keys, _ := c.Keys(ctx, prefix+"*").Result(); len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

func newBroker(t *testing.T, cfg sdk.Config) *broker {
	c, err := sdk.Open(context.Background(), cfg, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return &broker{t: t, client: c, prefix: "ct-mw-" + uuid.NewString()[:8] + "-"}
}

// deleteRabbitTopology removes the queues and exchanges the test made
// (names starting with prefix), listed through the management-free way:
// they are known by construction below.
func deleteRabbitTopology(url, prefix string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	for _, topic := range []string{"work", "work.dlq", "work.next"} {
		for _, group := range []string{"worker", "inspector", "replay"} {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(prefix+topic+"."+group, false, false, false)
				ch.Close()
			}
		}
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(prefix+topic, false, false)
			ch.Close()
		}
	}
}

func (b *broker) publish(topic string, msgs ...*sdk.Message) {
	b.t.Helper()
	if err := b.client.Publish(context.Background(), b.topic(topic), msgs...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *broker) subscribe(topic, group string, h sdk.Handler, opts ...sdk.SubscribeOption) {
	b.t.Helper()
	if _, err := b.client.Subscribe(context.Background(), b.topic(topic), group, h, opts...); err != nil {
		b.t.Fatal(err)
	}
}

var fast = middleware.RetryConfig{MaxAttempts: 4, Delay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func TestFlakyHandlerSucceedsAfterRetries(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		var calls atomic.Int32
		attempts := make(chan string, 10)
		done := make(chan struct{})
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			attempts <- m.Get(sdk.KeyAttempt)
			if calls.Add(1) < 3 {
				return errors.New("dependency hiccup")
			}
			close(done)
			return nil
		}, middleware.Retry(fast)))
		b.publish("work", sdk.NewMessage([]byte("job")))
		testenv.Await(t, done, "the third attempt to succeed")
		for i := 1; i <= 3; i++ {
			if got := <-attempts; got != strconv.Itoa(i) {
				t.Fatalf("attempt %d saw %s=%q", i, sdk.KeyAttempt, got)
			}
		}
		if calls.Load() != 3 {
			t.Fatalf("handler ran %d times, want 3", calls.Load())
		}
	})
}

func TestRetryRecoversPanicsAndSkipsPermanentErrors(t *testing.T) {
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error { panic("boom") }, middleware.Retry(fast))
	var pe *sdk.PanicError
	if err := h(context.Background(), sdk.NewMessage(nil)); !errors.As(err, &pe) {
		t.Fatalf("a panic should come back as *sdk.PanicError after the retries, got %v", err)
	}
	calls := 0
	h = middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		calls++
		return sdk.Permanent(errors.New("bad payload"))
	}, middleware.Retry(fast))
	if err := h(context.Background(), sdk.NewMessage(nil)); !sdk.IsPermanent(err) || calls != 1 {
		t.Fatalf("a permanent error must not be retried: %d calls, err %v", calls, err)
	}
}

func TestRetryReportsASuccessThatRacedACancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		calls++
		if calls == 1 {
			return errors.New("flaky")
		}
		cancel() // shutdown reaches the deadline while the retry succeeds
		return nil
	}, middleware.Retry(fast))
	if err := h(ctx, sdk.NewMessage(nil)); err != nil || calls != 2 {
		t.Fatalf("a retry that succeeded must be reported as a success, or the message is redelivered and handled twice: %d calls, err %v", calls, err)
	}
}

// inspect collects the dead-letter topic.
func (b *broker) inspect(topic string) <-chan *sdk.Message {
	ch := make(chan *sdk.Message, 10)
	b.subscribe(topic, "inspector", func(_ context.Context, m *sdk.Message) error { ch <- m; return nil })
	return ch
}

func TestPermanentErrorGoesStraightToDLQWithHeaders(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		dlq := b.inspect("work.dlq")
		var calls atomic.Int32
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			calls.Add(1)
			return sdk.Permanent(fmt.Errorf("decode order: %w", errors.New("unexpected EOF")))
		}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client}), middleware.Retry(fast)))
		sent := &sdk.Message{Payload: []byte("{broken"), EventType: "order.created", CorrelationID: "c-1", Metadata: map[string]string{"tenant": "acme"}}
		b.publish("work", sent)
		dead := testenv.Await(t, dlq, "the message in the DLQ")
		want := map[string]string{
			middleware.KeyDLQError: "decode order: unexpected EOF", middleware.KeyDLQDeliveries: "1",
			middleware.KeyDLQOriginalTopic: b.topic("work"), middleware.KeyDLQHandler: "worker", middleware.KeyDLQPermanent: "true",
			"tenant": "acme",
		}
		for k, v := range want {
			if dead.Get(k) != v {
				t.Errorf("DLQ header %s = %q, want %q", k, dead.Get(k), v)
			}
		}
		if dead.ID != sent.ID || string(dead.Payload) != "{broken" || dead.EventType != "order.created" || dead.CorrelationID != "c-1" {
			t.Errorf("the dead-lettered message should be the original: %+v", dead)
		}
		if _, err := time.Parse(time.RFC3339Nano, dead.Get(middleware.KeyDLQTime)); err != nil {
			t.Errorf("%s: %v", middleware.KeyDLQTime, err)
		}
		if calls.Load() != 1 {
			t.Errorf("a permanent failure should be tried once, was tried %d times", calls.Load())
		}
	})
}

func TestFailingMessageIsRedeliveredThenDeadLettered(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		dlq := b.inspect("work.dlq")
		var calls atomic.Int32
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			calls.Add(1)
			return errors.New("still down")
		}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client, MaxDeliveries: 3}),
			middleware.Retry(middleware.RetryConfig{MaxAttempts: 2, Delay: time.Millisecond})))
		b.publish("work", sdk.NewMessage([]byte("job")))
		dead := testenv.Await(t, dlq, "the message in the DLQ after 3 deliveries")
		if dead.Get(middleware.KeyDLQDeliveries) != "3" || dead.Get(middleware.KeyDLQPermanent) != "false" || dead.Get(middleware.KeyDLQError) != "still down" {
			t.Fatalf("DLQ headers: %v", dead.Metadata)
		}
		if calls.Load() != 6 {
			t.Fatalf("3 deliveries x 2 in-process attempts = 6 calls, got %d", calls.Load())
		}
		// Acknowledged once dead-lettered: no further delivery.
		b.publish("work", sdk.NewMessage([]byte("sentinel")))
		testenv.Eventually(t, 10*time.Second, "the sentinel's calls", func() bool { return calls.Load() >= 8 })
		select {
		case m := <-dlq:
			if m.Get(middleware.KeyDLQDeliveries) != "3" || string(m.Payload) != "sentinel" {
				t.Fatalf("unexpected DLQ entry %q %v", m.Payload, m.Metadata)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the sentinel should reach the DLQ too")
		}
		if calls.Load() != 12 {
			t.Fatalf("the first message came back after being dead-lettered: %d calls, want 12", calls.Load())
		}
	})
}

func TestReplayMovesDeadLettersBack(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		var fixed atomic.Bool
		handled := make(chan *sdk.Message, 10)
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			if !fixed.Load() {
				return sdk.Permanent(errors.New("bug in handler"))
			}
			handled <- m
			return nil
		}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client})))
		// Nothing creates the replay group here: DeadLetter does, before the
		// first dead letter (RabbitMQ would drop one published to an exchange
		// without a queue; a Redis group created later starts after it).
		dlq := b.inspect("work.dlq")
		sent := []*sdk.Message{sdk.NewMessage([]byte("a")), sdk.NewMessage([]byte("b"))}
		b.publish("work", sent...)
		testenv.Await(t, dlq, "the first message in the DLQ")
		testenv.Await(t, dlq, "the second message in the DLQ")
		fixed.Store(true) // the bug is fixed and deployed
		n, err := middleware.Replay(context.Background(), b.client, b.topic("work.dlq"), middleware.DefaultReplayGroup, 0, 2*time.Second)
		if err != nil || n != 2 {
			t.Fatalf("Replay moved %d, %v; want 2", n, err)
		}
		got := map[string]bool{}
		for i := 0; i < 2; i++ {
			m := testenv.Await(t, handled, "a replayed message")
			got[m.ID] = true
			if m.Get(middleware.KeyDLQError) != "" || m.Get(middleware.KeyDLQOriginalTopic) != "" {
				t.Errorf("replayed message still carries DLQ headers: %v", m.Metadata)
			}
		}
		for _, m := range sent {
			if !got[m.ID] {
				t.Errorf("message %s was not replayed", m.ID)
			}
		}
	})
}

func TestBreakerPausesConsumptionAndResumes(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		var transitions []string
		var tmu sync.Mutex
		breaker := middleware.NewBreaker(middleware.BreakerConfig{FailureThreshold: 3, Delay: 300 * time.Millisecond,
			OnStateChange: func(from, to string) { tmu.Lock(); transitions = append(transitions, to); tmu.Unlock() }})
		var down atomic.Bool
		down.Store(true)
		var calls, failures atomic.Int32
		done := make(chan struct{}, 20)
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			calls.Add(1)
			if down.Load() {
				failures.Add(1)
				return errors.New("database unreachable")
			}
			done <- struct{}{}
			return nil
		}, breaker.Handler()))
		for i := 0; i < 10; i++ {
			b.publish("work", sdk.NewMessage([]byte(strconv.Itoa(i))))
		}
		testenv.Eventually(t, 10*time.Second, "the breaker to open", func() bool { return breaker.State() == "open" })
		// While open, the subscription holds one message and takes no more:
		// no calls, no nack storm, however long the dependency is down.
		before := calls.Load()
		stillOpen := time.After(200 * time.Millisecond)
		<-stillOpen
		if calls.Load() != before || before != 3 {
			t.Fatalf("handler calls while open: %d before, %d after; want 3 and no more", before, calls.Load())
		}
		down.Store(false) // the dependency recovers
		for i := 0; i < 10; i++ {
			testenv.Await(t, done, "every message to be handled after the breaker closes")
		}
		if breaker.State() != "closed" {
			t.Fatalf("breaker state %s after recovery", breaker.State())
		}
		tmu.Lock()
		defer tmu.Unlock()
		if strings.Join(transitions, ",") != "open,half-open,closed" {
			t.Fatalf("transitions %v", transitions)
		}
	})
}

func TestBreakerMakesPublishingFailFast(t *testing.T) {
	breaker := middleware.NewBreaker(middleware.BreakerConfig{FailureThreshold: 2, Delay: time.Minute})
	var calls int
	pub := breaker.Publisher(publisherFunc(func(ctx context.Context, topic string, msgs ...*sdk.Message) error {
		calls++
		return errors.New("broker unreachable")
	}))
	for i := 0; i < 2; i++ {
		_ = pub.Publish(context.Background(), "orders", sdk.NewMessage(nil))
	}
	err := pub.Publish(context.Background(), "orders", sdk.NewMessage(nil))
	if !errors.Is(err, middleware.ErrCircuitOpen) || !strings.Contains(err.Error(), `publish to "orders"`) || !strings.Contains(err.Error(), "retry in") {
		t.Fatalf("want a fast ErrCircuitOpen naming the topic and the wait, got %v", err)
	}
	if calls != 2 {
		t.Fatalf("the open breaker should not call the broker: %d calls", calls)
	}
}

type publisherFunc func(ctx context.Context, topic string, msgs ...*sdk.Message) error

func (f publisherFunc) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	return f(ctx, topic, msgs...)
}

func TestTimeoutCancelsSlowHandler(t *testing.T) {
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
		<-ctx.Done()
		return ctx.Err()
	}, middleware.Timeout(20*time.Millisecond))
	m := sdk.NewMessage(nil)
	err := h(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "did not finish within 20ms") {
		t.Fatalf("want a timeout error, got %v", err)
	}
}

func TestBulkheadBoundsConcurrency(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		var running, peak atomic.Int32
		done := make(chan struct{}, 20)
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond) // work that overlaps
			running.Add(-1)
			done <- struct{}{}
			return nil
		}, middleware.Bulkhead(2, 10*time.Second)), sdk.WithConcurrency(5))
		for i := 0; i < 10; i++ {
			b.publish("work", sdk.NewMessage(nil))
		}
		for i := 0; i < 10; i++ {
			testenv.Await(t, done, "all messages")
		}
		if peak.Load() != 2 {
			t.Fatalf("peak concurrency %d, want the bulkhead's 2 (5 consumers)", peak.Load())
		}
	})
}

func TestRateLimitSpacesHandlers(t *testing.T) {
	h := middleware.Chain(func(ctx context.Context, m *sdk.Message) error { return nil }, middleware.RateLimit(50))
	start := time.Now()
	for i := 0; i < 11; i++ {
		if err := h(context.Background(), sdk.NewMessage(nil)); err != nil {
			t.Fatal(err)
		}
	}
	// 50/s is one every 20ms: 11 handlers need at least 10 intervals.
	if elapsed := time.Since(start); elapsed < 190*time.Millisecond {
		t.Fatalf("11 handlers at 50/s took %v; the limiter let them through too fast", elapsed)
	}
}

// An error text far over any broker's header limit is cut in the dead
// letter, which still goes out; the next message is not held up.
func TestHugeErrorIsCappedInTheDeadLetter(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *broker) {
		dlq := b.inspect("work.dlq")
		huge := strings.Repeat("é", 100_000) // 200 KB of two-byte characters
		b.subscribe("work", "worker", middleware.Chain(func(ctx context.Context, m *sdk.Message) error {
			return sdk.Permanent(errors.New(huge))
		}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client})))
		b.publish("work", sdk.NewMessage([]byte("first")), sdk.NewMessage([]byte("second")))
		for _, want := range []string{"first", "second"} {
			m := testenv.Await(t, dlq, "the dead letter of "+want)
			got := m.Get(middleware.KeyDLQError)
			if len(got) > middleware.MaxDLQErrorBytes || !strings.HasPrefix(got, "éé") || !strings.Contains(got, "bytes cut") || !utf8.ValidString(got) {
				t.Fatalf("x-dlq-error should be cut to at most %d bytes of valid UTF-8 saying so; got %d bytes ending %q", middleware.MaxDLQErrorBytes, len(got), got[max(0, len(got)-40):])
			}
		}
	})
}

// Failures marked BreakerNeutral are redelivered like any other but do not
// open the breaker; the same number of unmarked failures does.
func TestBreakerNeutralFailuresDoNotOpenTheBreaker(t *testing.T) {
	for _, c := range []struct {
		name  string
		fail  func(error) error
		state string
	}{
		{"neutral", middleware.BreakerNeutral, "closed"},
		{"plain", func(err error) error { return err }, "open"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := middleware.NewBreaker(middleware.BreakerConfig{FailureThreshold: 3, Delay: time.Hour})
			h := b.Handler()(func(context.Context, *sdk.Message) error { return c.fail(errors.New("card declined")) })
			for i := 0; i < 5 && b.State() == "closed"; i++ {
				if err := h(context.Background(), sdk.NewMessage(nil)); err == nil {
					t.Fatal("the failure must still be returned, for redelivery")
				}
			}
			if b.State() != c.state {
				t.Fatalf("after 5 %s failures the breaker is %s, want %s", c.name, b.State(), c.state)
			}
		})
	}
}

// Replay says so when nothing arrives, naming the topic, the group and why
// dead letters could be missing, instead of reporting 0 moved and no error.
func TestReplayOfNothingSaysSo(t *testing.T) {
	client := sdk.NewClient(memory.New())
	defer client.Close(context.Background())
	n, err := middleware.Replay(context.Background(), client, "orders.dlq", "replay-typo", 0, 50*time.Millisecond)
	if n != 0 || !errors.Is(err, middleware.ErrNothingToReplay) || !strings.Contains(err.Error(), `"orders.dlq"`) ||
		!strings.Contains(err.Error(), `"replay-typo"`) || !strings.Contains(err.Error(), "keeps only what was dead-lettered after it was created") {
		t.Fatalf("want 0 and an error wrapping ErrNothingToReplay that names the topic, the group and the likely cause, got %d, %v", n, err)
	}
}

// A dead-letter topic that is the topic itself is refused: the failing
// message stays where it is (nacked, with the reason) instead of being
// published back to the handler that failed it, copy after copy.
func TestDeadLetterTopicThatIsTheTopicItselfIsRefused(t *testing.T) {
	b := newBroker(t, sdk.Config{Driver: "memory"})
	errs := make(chan error, 10)
	seen := make(chan string, 10)
	b.subscribe("work", "watcher", func(_ context.Context, m *sdk.Message) error { seen <- string(m.Payload); return nil })
	same := middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: b.client, Topic: func(t string) string { return t }})
	b.subscribe("work", "worker", func(ctx context.Context, m *sdk.Message) error {
		if string(m.Payload) != "order" {
			return nil
		}
		err := same(func(context.Context, *sdk.Message) error { return sdk.Permanent(errors.New("bad order")) })(ctx, m)
		select {
		case errs <- err:
		default:
		}
		return err
	}, sdk.WithNackBackoff(time.Hour, time.Hour))
	b.publish("work", sdk.NewMessage([]byte("order")))
	err := testenv.Await(t, errs, "the dead-letter middleware's answer")
	if err == nil || !strings.Contains(err.Error(), "is the topic itself") || !strings.Contains(err.Error(), "bad order") {
		t.Fatalf("want the handler's error joined with the refusal, got %v", err)
	}
	// The watcher group sees what was published, in order, and no copy
	// between the two.
	b.publish("work", sdk.NewMessage([]byte("marker")))
	for _, want := range []string{"order", "marker"} {
		if got := testenv.Await(t, seen, "the watcher's next message"); got != want {
			t.Fatalf("the watcher got %q, want %q: a copy was published back to the topic", got, want)
		}
	}
}

// A middleware built with values that would fail or stall every message
// (no place in a bulkhead, no rate, a timeout of nothing, negative retry
// waits) panics when it is built, naming the value, rather than at the
// first message or never.
func TestMiddlewareOutOfRangePanicsWhenBuilt(t *testing.T) {
	for _, c := range []struct {
		name  string
		build func()
		want  string
	}{
		{"bulkhead of 0", func() { middleware.Bulkhead(0, time.Second) }, "Bulkhead(0, 1s)"},
		{"bulkhead wait below 0", func() { middleware.Bulkhead(2, -time.Second) }, "Bulkhead(2, -1s)"},
		{"rate of 0", func() { middleware.RateLimit(0) }, "RateLimit(0)"},
		{"rate below 0", func() { middleware.RateLimit(-5) }, "RateLimit(-5)"},
		{"timeout of 0", func() { middleware.Timeout(0) }, "Timeout(0s)"},
		{"retry attempts below 0", func() { middleware.Retry(middleware.RetryConfig{MaxAttempts: -1}) }, "MaxAttempts -1"},
		{"retry max delay below delay", func() {
			middleware.Retry(middleware.RetryConfig{Delay: time.Second, MaxDelay: time.Millisecond})
		}, "MaxDelay 1ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), c.want) {
					t.Fatalf("want a panic naming %q, got %v", c.want, p)
				}
			}()
			c.build()
		})
	}
	middleware.Retry(middleware.RetryConfig{}) // zero values take the defaults
}
