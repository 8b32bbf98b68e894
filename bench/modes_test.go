package bench

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The modes benchmark drives every client stack on a broker the way
// services do, in turns, and prints the table docs/benchmarks.md is made
// from:
//
//	go test -run '^$' -bench '^BenchmarkModes$' -benchtime 1x ./bench/
//
// Flags (after -args): -modes.brokers, -modes.rounds, -modes.dur, -modes.drain.
var (
	modesBrokers = flag.String("modes.brokers", "memory,redis,rabbitmq,kafka,nats", "brokers the modes benchmark measures, comma-separated")
	modesRounds  = flag.Int("modes.rounds", 5, "rounds of the modes benchmark; every system runs every mode once per round")
	modesDur     = flag.Duration("modes.dur", time.Second, "how long each timed publishing run lasts")
	modesDrain   = flag.Int("modes.drain", 10000, "messages in the backlog the drain mode consumes")
	modesOnly    = flag.String("modes.only", "", "run only the modes whose name contains one of these |-separated strings, and only the systems named in -modes.systems")
	modesSystems = flag.String("modes.systems", "", "comma-separated systems to run (the first broker system, raw, always runs)")
)

// selected reports whether the flags ask for mode m and system s.
func selected(m mode, s *system, raw bool) bool {
	if *modesOnly != "" && !slices.ContainsFunc(strings.Split(*modesOnly, "|"), func(part string) bool { return strings.Contains(m.name, part) }) {
		return false
	}
	return raw || *modesSystems == "" || slices.Contains(strings.Split(*modesSystems, ","), s.name)
}

// A system is one client stack on one broker: the raw client, msgkit, or
// a Watermill adapter. Each publishes and consumes its own topics in its
// own format.
type system struct {
	name string
	// publish sends payloads to topic, one message each, and returns once
	// the broker has taken them all.
	publish func(ctx context.Context, topic string, payloads [][]byte) error
	// consume starts a consumer of topic in group that calls got with each
	// payload, from any goroutine, after which the message counts as
	// handled; stop ends it.
	consume func(ctx context.Context, topic, group string, got func([]byte)) (stop func(), err error)
	// prepare makes topic and group so that what is published afterwards
	// waits for the group; nil means consume and stop at once.
	prepare func(ctx context.Context, topic, group string) error
}

// A broker is the systems measured on one broker, raw first.
type broker struct {
	name    string
	systems []*system
	// newTopic names a fresh topic; cleanup removes what a run made.
	newTopic func(b *testing.B) string
	// ceiling, when set, measures the broker's own limit for the table
	// (its own benchmark tool), in messages per second.
	ceiling func(b *testing.B) (rate float64, how string)
	// absolute: report ns and allocations per message, not ratios (an
	// in-process broker).
	absolute bool
}

// Payload layout: the intended send time (UnixNano) in the first 8 bytes,
// then a kind byte: measured messages count, warm-up ones do not.
const (
	kindMeasured = 'm'
	kindWarmup   = 'w'
)

func modePayload(sent time.Time, kind byte) []byte {
	p := make([]byte, len(payload))
	copy(p, payload)
	binary.BigEndian.PutUint64(p, uint64(sent.UnixNano()))
	p[8] = kind
	return p
}

func payloadSent(p []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(p))) }

// result is one measurement of one system in one mode.
type result struct {
	rate    float64 // messages per second
	allocs  float64 // allocations per message (this process)
	bytes   float64 // bytes allocated per message (this process)
	cpu     float64 // CPU time per message in µs (this process, all its goroutines)
	p50     time.Duration
	p99     time.Duration
	p999    time.Duration
	failure string
}

type modeFunc func(b *testing.B, br *broker, s *system, offered float64) result

type mode struct {
	name    string
	run     modeFunc
	latency bool
}

var modes = []mode{
	{name: "publish, 1 goroutine", run: publishSingles(1)},
	{name: "publish, 8 goroutines", run: publishSingles(8)},
	{name: "publish, 64 goroutines", run: publishSingles(64)},
	{name: "publish, batches of 100", run: publishBatches(100)},
	{name: "end to end, 8 publishers", run: endToEnd(8)},
	{name: "drain a backlog", run: drain},
	{name: "latency at half the maximum", run: latency, latency: true},
}

func allocCount() (uint64, uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs, ms.TotalAlloc
}

// measure runs f, which handles n() messages, and returns its rate, and
// its allocations and CPU time per message.
func measure(f func() (n int, elapsed time.Duration, err error)) result {
	runtime.GC()
	m0, b0 := allocCount()
	c0 := processCPU()
	n, elapsed, err := f()
	c1 := processCPU()
	m1, b1 := allocCount()
	if err != nil {
		return result{failure: err.Error()}
	}
	if n == 0 || elapsed <= 0 {
		return result{failure: "no message handled"}
	}
	cpu := math.NaN()
	if c0 > 0 {
		cpu = float64(c1-c0) / float64(time.Microsecond) / float64(n)
	}
	return result{rate: float64(n) / elapsed.Seconds(), allocs: float64(m1-m0) / float64(n), bytes: float64(b1-b0) / float64(n), cpu: cpu}
}

func prepare(ctx context.Context, s *system, topic, group string) error {
	if s.prepare != nil {
		return s.prepare(ctx, topic, group)
	}
	stop, err := s.consume(ctx, topic, group, func([]byte) {})
	if err != nil {
		return err
	}
	stop()
	return nil
}

// publishSingles: g goroutines, each publishing one message per call, for
// the mode's duration, to a topic with one group waiting.
func publishSingles(g int) modeFunc {
	return func(b *testing.B, br *broker, s *system, _ float64) result {
		ctx := context.Background()
		topic := br.newTopic(b)
		if err := prepare(ctx, s, topic, "g"); err != nil {
			return result{failure: err.Error()}
		}
		return measure(func() (int, time.Duration, error) {
			return publishFor(ctx, s, topic, g, 1, *modesDur)
		})
	}
}

func publishBatches(size int) modeFunc {
	return func(b *testing.B, br *broker, s *system, _ float64) result {
		ctx := context.Background()
		topic := br.newTopic(b)
		if err := prepare(ctx, s, topic, "g"); err != nil {
			return result{failure: err.Error()}
		}
		return measure(func() (int, time.Duration, error) {
			return publishFor(ctx, s, topic, 1, size, *modesDur)
		})
	}
}

// publishFor publishes from g goroutines, per messages a call, until dur
// has passed, and returns how many the broker took and how long it took.
func publishFor(ctx context.Context, s *system, topic string, g, per int, dur time.Duration) (int, time.Duration, error) {
	var sent atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([][]byte, per)
			for i := range batch {
				batch[i] = modePayload(time.Time{}, kindMeasured)
			}
			for time.Now().Before(deadline) {
				if err := s.publish(ctx, topic, batch); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				sent.Add(int64(per))
			}
		}()
	}
	wg.Wait()
	return int(sent.Load()), time.Since(start), firstErr
}

// counter counts measured messages handled and signals when it reaches a
// target.
type counter struct {
	mu     sync.Mutex
	n      int
	target int
	first  time.Time
	last   time.Time
	done   chan struct{}
	lat    []time.Duration // publish-to-handler latencies, when asked for
	record bool
	warm   chan struct{}
}

func newCounter() *counter {
	return &counter{target: -1, done: make(chan struct{}), warm: make(chan struct{}, 1)}
}

func (c *counter) got(p []byte) {
	now := time.Now()
	if len(p) < 9 || p[8] != kindMeasured {
		select {
		case c.warm <- struct{}{}:
		default:
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.first = now
	}
	c.n++
	c.last = now
	if c.record {
		c.lat = append(c.lat, now.Sub(payloadSent(p)))
	}
	if c.n == c.target {
		close(c.done)
	}
}

// expect sets how many measured messages make the count complete.
func (c *counter) expect(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.target = n
	if c.n >= n {
		close(c.done)
	}
}

// wait waits for the target, bounded.
func (c *counter) wait(limit time.Duration) error {
	select {
	case <-c.done:
		return nil
	case <-time.After(limit):
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("handled %d of %d messages within %v", c.n, c.target, limit)
	}
}

// warmUp publishes a warm-up message every 200ms until the consumer
// handles one: its group has joined and it reads what comes next.
func warmUp(ctx context.Context, s *system, topic string, c *counter) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.publish(ctx, topic, [][]byte{modePayload(time.Now(), kindWarmup)}); err != nil {
			return fmt.Errorf("warm-up publish: %w", err)
		}
		select {
		case <-c.warm:
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("the consumer handled no warm-up message within 30s")
}

// liveConsumer starts a consumer of a fresh topic and returns once it has
// handled a warm-up message.
func liveConsumer(ctx context.Context, b *testing.B, br *broker, s *system) (string, *counter, func(), error) {
	topic := br.newTopic(b)
	c := newCounter()
	stop, err := s.consume(ctx, topic, "g", c.got)
	if err != nil {
		return "", nil, nil, err
	}
	if err := warmUp(ctx, s, topic, c); err != nil {
		stop()
		return "", nil, nil, err
	}
	return topic, c, stop, nil
}

// endToEnd: a consumer running, g goroutines publishing one message per
// call for the mode's duration; the clock stops when the last is handled.
func endToEnd(g int) modeFunc {
	return func(b *testing.B, br *broker, s *system, _ float64) result {
		ctx := context.Background()
		topic, c, stop, err := liveConsumer(ctx, b, br, s)
		if err != nil {
			return result{failure: err.Error()}
		}
		defer stop()
		return measure(func() (int, time.Duration, error) {
			start := time.Now()
			n, _, err := publishFor(ctx, s, topic, g, 1, *modesDur)
			if err != nil {
				return 0, 0, err
			}
			c.expect(n)
			if err := c.wait(60 * time.Second); err != nil {
				return 0, 0, err
			}
			return n, c.last.Sub(start), nil
		})
	}
}

// drain: a backlog published before the consumer starts (untimed, in
// batches), consumed; the clock runs from the start of the consumer (its
// connection and group join included) to the last message handled. From
// the first message instead would flatter a client that fetches the whole
// backlog before handing out its first message.
func drain(b *testing.B, br *broker, s *system, _ float64) result {
	ctx := context.Background()
	topic := br.newTopic(b)
	if err := prepare(ctx, s, topic, "g"); err != nil {
		return result{failure: err.Error()}
	}
	n := *modesDrain
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = modePayload(time.Time{}, kindMeasured)
	}
	for sent := 0; sent < n; sent += len(batch) {
		if err := s.publish(ctx, topic, batch[:min(len(batch), n-sent)]); err != nil {
			return result{failure: "prefill: " + err.Error()}
		}
	}
	c := newCounter()
	c.expect(n)
	var stop func()
	r := measure(func() (int, time.Duration, error) {
		start := time.Now()
		var err error
		if stop, err = s.consume(ctx, topic, "g", c.got); err != nil {
			return 0, 0, err
		}
		if err := c.wait(120 * time.Second); err != nil {
			return 0, 0, err
		}
		return n, c.last.Sub(start), nil
	})
	if stop != nil {
		stop()
	}
	return r
}

// latency offers messages at a fixed rate (half the raw client's measured
// end-to-end maximum) from 8 publishing goroutines, each stamped with the
// time it was due, and measures due-to-handled: a publisher that falls
// behind shows as latency, not as a lower rate.
func latency(b *testing.B, br *broker, s *system, offered float64) result {
	ctx := context.Background()
	topic, c, stop, err := liveConsumer(ctx, b, br, s)
	if err != nil {
		return result{failure: err.Error()}
	}
	defer stop()
	total := int(offered * modesDur.Seconds() * 2)
	c.mu.Lock()
	c.record = true
	c.lat = make([]time.Duration, 0, total)
	c.mu.Unlock()
	due := make(chan time.Time, total)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range due {
				if err := s.publish(ctx, topic, [][]byte{modePayload(t, kindMeasured)}); err != nil {
					failed.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / offered)
	for i := 0; i < total; {
		now := time.Now()
		for ; i < total && !start.Add(time.Duration(i)*interval).After(now); i++ {
			due <- start.Add(time.Duration(i) * interval)
		}
		time.Sleep(100 * time.Microsecond)
	}
	close(due)
	wg.Wait()
	if f := failed.Load(); f != nil {
		return result{failure: f.(string)}
	}
	c.expect(total)
	if err := c.wait(60 * time.Second); err != nil {
		return result{failure: err.Error()}
	}
	c.mu.Lock()
	lat := slices.Clone(c.lat)
	c.mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return result{rate: offered, p50: q(0.50), p99: q(0.99), p999: q(0.999)}
}

// BenchmarkModes measures each broker's systems in every mode, in turns,
// and prints one table per broker.
func BenchmarkModes(b *testing.B) {
	for _, name := range strings.Split(*modesBrokers, ",") {
		mk, ok := modeBrokers[strings.TrimSpace(name)]
		if !ok {
			b.Fatalf("-modes.brokers: unknown broker %q (known: %s)", name, strings.Join(slices.Sorted(maps.Keys(modeBrokers)), ", "))
		}
		b.Run(name, func(b *testing.B) {
			br := mk(b)
			runModes(b, br)
		})
	}
}

// modeBrokers builds each broker's systems.
var modeBrokers = map[string]func(b *testing.B) *broker{}

func runModes(b *testing.B, br *broker) {
	results := map[string]map[string][]result{} // mode, system
	add := func(m, s string, r result) {
		if results[m] == nil {
			results[m] = map[string][]result{}
		}
		results[m][s] = append(results[m][s], r)
	}
	var ceiling float64
	var ceilingHow string
	for round := 0; round < *modesRounds; round++ {
		for _, m := range modes {
			if m.latency {
				continue
			}
			for i, s := range br.systems {
				if selected(m, s, i == 0) {
					add(m.name, s.name, m.run(b, br, s, 0))
				}
			}
		}
	}
	raw := br.systems[0].name
	offered := median(rateList(results["end to end, 8 publishers"][raw])) / 2
	for _, m := range modes {
		if !m.latency || !(offered > 0) || br.absolute { // NaN when raw end to end failed
			continue
		}
		for round := 0; round < *modesRounds; round++ {
			for i, s := range br.systems {
				if selected(m, s, i == 0) {
					add(m.name, s.name, m.run(b, br, s, offered))
				}
			}
		}
	}
	if br.ceiling != nil {
		ceiling, ceilingHow = br.ceiling(b)
	}
	printTable(br, results, offered, ceiling, ceilingHow)
}

func rateList(rs []result) []float64 {
	var out []float64
	for _, r := range rs {
		if r.failure == "" {
			out = append(out, r.rate)
		}
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func field(rs []result, f func(result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		if r.failure == "" {
			out = append(out, f(r))
		}
	}
	return out
}

func kilo(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case x >= 100_000:
		return fmt.Sprintf("%.0fk", x/1000)
	case x >= 1000:
		return fmt.Sprintf("%.1fk", x/1000)
	}
	return fmt.Sprintf("%.0f", x)
}

// spread is "median (min–max)".
func spread(xs []float64, format func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", format(median(xs)), format(slices.Min(xs)), format(slices.Max(xs)))
}

func ms(x float64) string { return fmt.Sprintf("%.2f", x/float64(time.Millisecond)) }

func printTable(br *broker, results map[string]map[string][]result, offered, ceiling float64, ceilingHow string) {
	w := os.Stdout
	raw := br.systems[0].name
	fmt.Fprintf(w, "\n### %s (%d rounds, %v per timed run, %d-message backlog, GOMAXPROCS %d)\n\n",
		br.name, *modesRounds, *modesDur, *modesDrain, runtime.GOMAXPROCS(0))
	head := "| mode |"
	sep := "|---|"
	for _, s := range br.systems {
		head += " " + s.name + " |"
		sep += "---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, m := range modes {
		rs := results[m.name]
		if rs == nil {
			continue
		}
		if m.latency {
			for _, q := range []struct {
				name string
				f    func(result) float64
			}{
				{"p50", func(r result) float64 { return float64(r.p50) }},
				{"p99", func(r result) float64 { return float64(r.p99) }},
				{"p999", func(r result) float64 { return float64(r.p999) }},
			} {
				row := fmt.Sprintf("| latency %s ms at %s msgs/s |", q.name, kilo(offered))
				base := median(field(rs[raw], q.f))
				for _, s := range br.systems {
					xs := field(rs[s.name], q.f)
					row += " " + spread(xs, ms) + ratioNote(s.name != raw, median(xs), base) + failures(rs[s.name]) + " |"
				}
				fmt.Fprintln(w, row)
			}
			continue
		}
		unit := " msgs/s"
		if br.absolute {
			unit = ", ns a message"
		}
		row := "| " + m.name + unit + " |"
		base := median(rateList(rs[raw]))
		for _, s := range br.systems {
			xs := rateList(rs[s.name])
			cell := spread(xs, kilo)
			if br.absolute {
				cell = spread(field(rs[s.name], func(r result) float64 { return 1e9 / r.rate }), func(x float64) string { return fmt.Sprintf("%.0f ns", x) })
			}
			row += " " + cell + ratioNote(s.name != raw && !br.absolute, median(xs), base) + failures(rs[s.name]) + " |"
		}
		fmt.Fprintln(w, row)
	}
	// Allocations per message, end to end (publisher and consumer in this
	// process).
	e2e := results["end to end, 8 publishers"]
	for _, what := range []struct {
		name string
		f    func(result) float64
	}{
		{"allocations / message, end to end", func(r result) float64 { return r.allocs }},
		{"bytes / message, end to end", func(r result) float64 { return r.bytes }},
	} {
		row := "| " + what.name + " |"
		base := median(field(e2e[raw], what.f))
		for _, s := range br.systems {
			x := median(field(e2e[s.name], what.f))
			row += fmt.Sprintf(" %.0f", x) + ratioNote(s.name != raw && !br.absolute, x, base) + " |"
		}
		fmt.Fprintln(w, row)
	}
	// CPU time of this process per message drained: the consumer's own
	// cost, which the drain's rate mixes with the broker's and the
	// machine's (the broker's CPU counts only for the in-process broker).
	if rs := results["drain a backlog"]; rs != nil {
		cpu := func(r result) float64 { return r.cpu }
		row := "| CPU µs / message in this process, drain |"
		base := median(field(rs[raw], cpu))
		for _, s := range br.systems {
			xs := field(rs[s.name], cpu)
			row += " " + spread(xs, func(x float64) string { return fmt.Sprintf("%.2f", x) }) + ratioNote(s.name != raw && !br.absolute, median(xs), base) + " |"
		}
		fmt.Fprintln(w, row)
	}
	switch {
	case ceiling > 0:
		fmt.Fprintf(w, "\nCeiling: %s msgs/s (%s).\n", kilo(ceiling), ceilingHow)
	case ceilingHow != "":
		fmt.Fprintf(w, "\nCeiling not measured: %s.\n", ceilingHow)
	}
	for _, m := range modes {
		for _, s := range br.systems {
			for _, r := range results[m.name][s.name] {
				if r.failure != "" {
					fmt.Fprintf(w, "\n%s, %s: %s\n", m.name, s.name, r.failure)
					break
				}
			}
		}
	}
}

func ratioNote(show bool, x, base float64) string {
	if !show || math.IsNaN(x) || math.IsNaN(base) || base == 0 {
		return ""
	}
	return fmt.Sprintf(" **%.2f×**", x/base)
}

func failures(rs []result) string {
	n := 0
	for _, r := range rs {
		if r.failure != "" {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed)", n)
}
