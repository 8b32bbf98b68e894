package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/msgkit/msgkit/sdk/driver"
)

// fakeSub hands out its messages once, in order, and records how they
// were settled.
type fakeSub struct {
	canNack bool
	opts    driver.Options

	mu        sync.Mutex
	queue     []*driver.Message
	acks      []string
	nacks     [][]string
	nackDelay []time.Duration // the delay passed with each SendNacks
	nackTime  []time.Time     // when each SendNacks came
	closed    bool
	more      chan struct{}
}

func newFakeSub(canNack bool, msgs ...*driver.Message) *fakeSub {
	for _, m := range msgs {
		m.AckID = m.ID
	}
	return &fakeSub{canNack: canNack, queue: msgs, more: make(chan struct{})}
}

func msg(id, key string) *driver.Message {
	return &driver.Message{ID: id, OrderingKey: key, Metadata: map[string]string{"k": "v"}}
}

func (s *fakeSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	n := min(max, len(s.queue))
	out := s.queue[:n]
	s.queue = s.queue[n:]
	s.mu.Unlock()
	if n > 0 {
		return out, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.more:
		return nil, nil
	}
}

func ids(a []driver.AckID) []string {
	out := make([]string, len(a))
	for i, id := range a {
		out[i] = id.(string)
	}
	return out
}

func (s *fakeSub) SendAcks(_ context.Context, a []driver.AckID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks = append(s.acks, ids(a)...)
	return nil
}

func (s *fakeSub) CanNack() bool { return s.canNack }

func (s *fakeSub) SendNacks(_ context.Context, a []driver.AckID, delay time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nacks = append(s.nacks, ids(a))
	s.nackDelay = append(s.nackDelay, delay)
	s.nackTime = append(s.nackTime, time.Now())
	return nil
}

func (s *fakeSub) ExtendAcks(context.Context, []driver.AckID) error { return nil }
func (s *fakeSub) Options() driver.Options                          { return s.opts }
func (s *fakeSub) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *fakeSub) settled() (acks []string, nacks [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks), slices.Clone(s.nacks)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Where the broker cannot take a message back, a nacked one is handed to a
// handler again before the next message of its key, with the metadata it
// arrived with, not what the failed handler wrote into it.
func TestLocalRedeliveryComesBeforeTheNextOfItsKeyWithFreshMetadata(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := newFakeSub(false, msg("a1", "k"), msg("a2", "k"), msg("b1", ""))
	var mu sync.Mutex
	var order []string
	failed := false
	r := Start(sub, func(m *driver.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, m.ID+"/"+m.Metadata["k"])
		if m.ID == "a1" && !failed {
			failed = true
			m.Metadata["k"] = "changed by the failed handler"
			return false
		}
		return true
	}, Config{Concurrency: 4})
	waitFor(t, "all three acked", func() bool { acks, _ := sub.settled(); return len(acks) == 3 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	ia1, ia1again, ia2 := slices.Index(order, "a1/v"), slices.Index(order[slices.Index(order, "a1/v")+1:], "a1/v"), slices.Index(order, "a2/v")
	if ia1 < 0 || ia1again < 0 || ia2 < 0 || ia2 < ia1+1+ia1again {
		t.Fatalf("key k must go a1, a1 again (with its metadata as received), then a2; handled: %v", order)
	}
	if _, nacks := sub.settled(); len(nacks) != 0 {
		t.Fatalf("a driver that cannot nack must not be asked to: %v", nacks)
	}
}

// Where the broker takes a message back, a nack hands back with it every
// later message of its key held here, so the broker redelivers the key in
// order; other keys go on.
func TestNackHandsBackTheLaterMessagesOfItsKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := newFakeSub(true, msg("a1", "k"), msg("a2", "k"), msg("a3", "k"), msg("b1", "other"))
	r := Start(sub, func(m *driver.Message) bool { return m.ID != "a1" }, Config{Concurrency: 2})
	waitFor(t, "a1 nacked and b1 acked", func() bool {
		acks, nacks := sub.settled()
		return len(nacks) == 1 && slices.Contains(acks, "b1")
	})
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	acks, nacks := sub.settled()
	if !slices.Equal(nacks[0], []string{"a1", "a2", "a3"}) {
		t.Fatalf("the nack of a1 must hand back a2 and a3 with it, in order: nacks %v", nacks)
	}
	if slices.Contains(acks, "a2") || slices.Contains(acks, "a3") {
		t.Fatalf("messages handed back must not be handled here: acks %v", acks)
	}
}

// Stop waits for a running handler, acks its message, hands back what was
// received and not started, and closes the subscription.
func TestStopDrainsAndHandsBackWhatWasNotStarted(t *testing.T) {
	defer goleak.VerifyNone(t)
	var msgs []*driver.Message
	for i := range 5 {
		msgs = append(msgs, msg(fmt.Sprint("m", i), ""))
	}
	sub := newFakeSub(true, msgs...)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := Start(sub, func(m *driver.Message) bool {
		once.Do(func() { close(started); <-release })
		return true
	}, Config{Concurrency: 1})
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler ran", err)
	case <-time.After(50 * time.Millisecond): // a window for a wrong early return
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	acks, nacks := sub.settled()
	if !slices.Equal(acks, []string{"m0"}) {
		t.Fatalf("only the running message may be handled and acked during Stop: acks %v", acks)
	}
	var back []string
	for _, n := range nacks {
		back = append(back, n...)
	}
	slices.Sort(back)
	if !slices.Equal(back, []string{"m1", "m2", "m3", "m4"}) {
		t.Fatalf("what was received and not started must be handed back: %v", back)
	}
	if !sub.closed {
		t.Fatal("Stop must close the driver's subscription")
	}
}

// A handler that does not return holds Stop only until its context ends.
func TestStopReturnsAtTheDeadlineWithAStuckHandler(t *testing.T) {
	sub := newFakeSub(true, msg("stuck", ""))
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	deadlineRan := make(chan struct{})
	r := Start(sub, func(*driver.Message) bool { close(started); <-release; return true },
		Config{OnDeadline: func() { close(deadlineRan) }})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := r.Stop(ctx)
	if err == nil {
		t.Fatal("Stop at its deadline with a handler running must say so")
	}
	select {
	case <-deadlineRan:
	default:
		t.Fatal("OnDeadline must run when handlers are abandoned")
	}
}

// orderedSub counts messages received and not yet acked, and records the
// count each ReceiveBatch call found.
type orderedSub struct {
	*fakeSub
	mu      sync.Mutex
	unacked int
	found   []int
}

func (s *orderedSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	s.mu.Lock()
	s.found = append(s.found, s.unacked)
	s.mu.Unlock()
	msgs, err := s.fakeSub.ReceiveBatch(ctx, max)
	s.mu.Lock()
	s.unacked += len(msgs)
	s.mu.Unlock()
	return msgs, err
}

func (s *orderedSub) SendAcks(ctx context.Context, a []driver.AckID) error {
	s.mu.Lock()
	s.unacked -= len(a)
	s.mu.Unlock()
	return s.fakeSub.SendAcks(ctx, a)
}

// With AckBatch 1 an ack reaches the driver before the fetcher hears of
// the room it made: a broker that hands out its next message only after an
// ack (a Watermill subscription) must not see more unacked messages at a
// ReceiveBatch than the engine means to hold (one per handler).
func TestAFullAckBatchIsSentBeforeTheNextReceive(t *testing.T) {
	defer goleak.VerifyNone(t)
	var msgs []*driver.Message
	for i := range 50 {
		msgs = append(msgs, msg(fmt.Sprint("m", i), ""))
	}
	sub := &orderedSub{fakeSub: newFakeSub(true, msgs...)}
	sub.opts = driver.Options{MaxBatch: 1, AckBatch: 1}
	r := Start(sub, func(*driver.Message) bool { return true }, Config{Concurrency: 1})
	waitFor(t, "all acked", func() bool { acks, _ := sub.settled(); return len(acks) == 50 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for i, n := range sub.found {
		if n > 1 {
			t.Fatalf("ReceiveBatch call %d came with %d messages not yet acked to the driver; one handler holds at most one", i, n)
		}
	}
}

// A message redelivered here waits RedeliveryDelay; other keys go on
// meanwhile.
func TestRedeliveryDelayHoldsOnlyTheNackedKey(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := newFakeSub(false, msg("a1", "k"), msg("b1", "other"))
	sub.opts = driver.Options{RedeliveryDelay: 200 * time.Millisecond}
	var mu sync.Mutex
	at := map[string][]time.Time{}
	r := Start(sub, func(m *driver.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		at[m.ID] = append(at[m.ID], time.Now())
		return m.ID != "a1" || len(at["a1"]) > 1
	}, Config{Concurrency: 1})
	waitFor(t, "both acked", func() bool { acks, _ := sub.settled(); return len(acks) == 2 })
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := at["a1"][1].Sub(at["a1"][0]); gap < 200*time.Millisecond {
		t.Fatalf("a1 came again after %v, before its 200ms redelivery delay", gap)
	}
	if !at["b1"][0].Before(at["a1"][1]) {
		t.Fatal("b1, of another key, must not wait for a1's redelivery")
	}
}

// closedSub is a subscription closed under its receiver (its transport
// was closed first): every receive fails with ErrClosed.
type closedSub struct {
	fakeSub
	receives atomic.Int32
}

func (s *closedSub) ReceiveBatch(context.Context, int) ([]*driver.Message, error) {
	s.receives.Add(1)
	return nil, fmt.Errorf("test: subscription %w", driver.ErrClosed)
}

// A subscription its driver closed is not retried: retrying cannot help,
// and a fetcher retrying forever is a goroutine that never ends.
func TestClosedSubscriptionIsNotRetried(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := &closedSub{fakeSub: *newFakeSub(true)}
	var logged strings.Builder
	log := &syncWriter{w: &logged}
	r := Start(sub, func(*driver.Message) bool { return true }, Config{Logger: slog.New(slog.NewTextHandler(log, nil))})
	select {
	case <-r.fetcherDone:
	case <-time.After(5 * time.Second):
		t.Fatalf("the fetcher still runs 5s after its subscription said it was closed (%d receives)", sub.receives.Load())
	}
	if n := sub.receives.Load(); n != 1 {
		t.Fatalf("a closed subscription must be asked once, was asked %d times", n)
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if !strings.Contains(logged.String(), "closed by its driver") {
		t.Fatalf("the receiver must say why it stopped receiving, logged %q", logged.String())
	}
}

// syncWriter serialises writes from the receiver's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// stopSignalSub tells when the engine stopped fetching, which Stop does
// after it has marked the receiver stopping.
type stopSignalSub struct {
	*fakeSub
	fetchStopped chan struct{}
	once         sync.Once
	calls        atomic.Int32
	again        chan struct{} // closed when the fetcher asks for more
}

func (s *stopSignalSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	if s.calls.Add(1) == 2 {
		close(s.again)
	}
	m, err := s.fakeSub.ReceiveBatch(ctx, max)
	if ctx.Err() != nil {
		s.once.Do(func() { close(s.fetchStopped) })
	}
	return m, err
}

// A handler that fails after Stop began hands its message back at once,
// without the nack backoff, on brokers that delay nacks themselves (SQS)
// as on the others: another member, or a tool that only looked at it,
// must not wait for it.
func TestAHandlerFailingDuringStopHandsBackAtOnce(t *testing.T) {
	for _, delays := range []bool{true, false} {
		t.Run(fmt.Sprint("DelaysNacks=", delays), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			sub := &stopSignalSub{fakeSub: newFakeSub(true, msg("held", "")), fetchStopped: make(chan struct{}), again: make(chan struct{})}
			sub.opts = driver.Options{DelaysNacks: delays}
			started := make(chan struct{})
			r := Start(sub, func(*driver.Message) bool {
				close(started)
				<-sub.fetchStopped
				return false
			}, Config{Concurrency: 1, NackBackoff: Backoff{Initial: time.Hour, Max: time.Hour}})
			<-started
			<-sub.again // the fetcher waits in ReceiveBatch, where Stop's cancel reaches it
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := r.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			sub.mu.Lock()
			defer sub.mu.Unlock()
			if len(sub.nacks) != 1 || !slices.Equal(sub.nacks[0], []string{"held"}) || sub.nackDelay[0] != 0 {
				t.Fatalf("the message must be handed back once, with no delay: nacks %v, delays %v", sub.nacks, sub.nackDelay)
			}
		})
	}
}

// A handler told the subscription stops (sdk.Stopping) returns before Stop
// is called; once MarkStopping was called, its nack goes back at once, not
// after a backoff the broker would wait out (SQS, JetStream).
func TestANackAfterMarkStoppingHandsBackAtOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := newFakeSub(true, msg("held", ""))
	sub.opts = driver.Options{DelaysNacks: true}
	started, release := make(chan struct{}), make(chan struct{})
	r := Start(sub, func(*driver.Message) bool {
		close(started)
		<-release
		return false
	}, Config{Concurrency: 1, NackBackoff: Backoff{Initial: time.Hour, Max: time.Hour}})
	<-started
	r.MarkStopping()
	close(release)
	waitFor(t, "the nack", func() bool { _, nacks := sub.settled(); return len(nacks) == 1 })
	sub.mu.Lock()
	delay := sub.nackDelay[0]
	sub.mu.Unlock()
	if delay != 0 {
		t.Fatalf("a nack after MarkStopping was sent with delay %v, want 0", delay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// concurrentSub's ReceiveBatch waits for a message to be given it on ch (a
// nil one: it returns none, as an empty long poll), counting how many of
// its calls wait at once.
type concurrentSub struct {
	*fakeSub
	ch             chan *driver.Message
	inFlight, most atomic.Int32
}

func (s *concurrentSub) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case m := <-s.ch:
		if m == nil {
			return nil, nil
		}
		return []*driver.Message{m}, nil
	}
}

// With Options.Receivers the engine keeps that many receives in flight
// while they return messages, so a long poll that returns few does not
// leave the next waiting for it; while they come back empty it keeps one
// (an idle SQS subscription makes one billed call per wait, not several).
// Stop waits for each of them.
func TestReceiversKeepThatManyReceivesInFlightWhileMessagesCome(t *testing.T) {
	defer goleak.VerifyNone(t)
	sub := &concurrentSub{fakeSub: newFakeSub(true), ch: make(chan *driver.Message)}
	sub.opts = driver.Options{MaxBatch: 10, Receivers: 3, AckFlush: time.Millisecond}
	var handled atomic.Int32
	r := Start(sub, func(*driver.Message) bool { handled.Add(1); return true }, Config{Concurrency: 2})
	send := func(i int) {
		m := msg(fmt.Sprint(i), "")
		m.AckID = m.ID
		sub.ch <- m
	}
	waitFor(t, "a first receive", func() bool { return sub.inFlight.Load() == 1 })
	if got := sub.most.Load(); got != 1 {
		t.Fatalf("%d receives in flight before any message came, want 1", got)
	}
	send(0)
	waitFor(t, "3 receives in flight once messages come", func() bool { return sub.inFlight.Load() == 3 })
	for i := range 20 {
		send(i + 1)
	}
	waitFor(t, "21 messages handled", func() bool { return handled.Load() == 21 })
	waitFor(t, "3 receives in flight again", func() bool { return sub.inFlight.Load() == 3 })
	if got := sub.most.Load(); got != 3 {
		t.Fatalf("at most %d receives were in flight at once, want 3 (Options.Receivers)", got)
	}
	// Empty polls, until the extra receivers rest (the one that keeps
	// polling may take several of them).
	waitFor(t, "one receive in flight after empty ones", func() bool {
		select {
		case sub.ch <- nil:
		default:
		}
		return sub.inFlight.Load() == 1
	})
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n := sub.inFlight.Load(); n != 1 {
			t.Fatalf("%d receives in flight after receives came back empty, want 1", n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sub.inFlight.Load(); n != 0 {
		t.Fatalf("Stop returned with %d receives still in flight", n)
	}
	if acks, _ := sub.settled(); len(acks) != 21 {
		t.Fatalf("%d acks sent, want 21", len(acks))
	}
}

// silentAcksSub is a fakeSub whose SendAcks waits for unblock, ignoring
// its context, as acks to a broker that stopped answering may.
type silentAcksSub struct {
	*fakeSub
	unblock chan struct{}
	sending chan struct{} // closed when the first SendAcks starts
	once    sync.Once
}

func (s *silentAcksSub) SendAcks(ctx context.Context, a []driver.AckID) error {
	s.once.Do(func() { close(s.sending) })
	<-s.unblock
	return s.fakeSub.SendAcks(ctx, a)
}

// Stop returns by its deadline while a flush of acks is stuck on the
// broker, and the acks and the driver's Close still happen once it
// answers.
func TestStopReturnsAtTheDeadlineWhileAcksWaitForTheBroker(t *testing.T) {
	sub := &silentAcksSub{fakeSub: newFakeSub(true, msg("a", "")), unblock: make(chan struct{}), sending: make(chan struct{})}
	r := Start(sub, func(*driver.Message) bool { return true }, Config{})
	<-sub.sending // the flusher is sending the ack
	// The broker answers, late.
	answers := time.AfterFunc(3*time.Second, func() { close(sub.unblock) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Stop(ctx)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Stop with a 50ms deadline took %v while acks waited for the broker", took)
	}
	if err == nil || !strings.Contains(err.Error(), "did not finish before the deadline") {
		t.Fatalf("Stop must say what did not finish, got %v", err)
	}
	if answers.Stop() {
		close(sub.unblock)
	}
	waitFor(t, "the ack and the driver's Close after the broker answers", func() bool {
		acks, _ := sub.settled()
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return len(acks) == 1 && sub.closed
	})
}
