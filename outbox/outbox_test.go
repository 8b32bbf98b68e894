package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one database with a fresh pair of tables, a memory broker and a
// client on it.
type env struct {
	t       *testing.T
	dialect outbox.Dialect
	db      *sql.DB
	table   string
	store   *outbox.Store
	client  *sdk.Client
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// eachDatabase runs f on SQLite, PostgreSQL and MariaDB.
func eachDatabase(t *testing.T, f func(t *testing.T, e *env)) {
	for _, d := range []outbox.Dialect{outbox.SQLite, outbox.Postgres, outbox.MySQL} {
		t.Run(string(d), func(t *testing.T) { f(t, newEnv(t, d)) })
	}
}

func openDB(t *testing.T, d outbox.Dialect) *sql.DB {
	t.Helper()
	var driver, dsn string
	switch d {
	case outbox.SQLite:
		driver = "sqlite"
		dsn = "file:" + filepath.Join(t.TempDir(), "outbox.db") + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	case outbox.Postgres:
		driver, dsn = "pgx", testenv.Postgres(t)
	case outbox.MySQL:
		driver, dsn = "mysql", testenv.MySQL(t)
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if d == outbox.SQLite {
		db.SetMaxOpenConns(1) // one writer at a time: outbox.New requires it
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("%s: %v", d, err)
	}
	return db
}

func newEnv(t *testing.T, d outbox.Dialect) *env { return newEnvNamed(t, d, randomName("ob_")) }

// newEnvNamed is newEnv with the outbox table's name.
func newEnvNamed(t *testing.T, d outbox.Dialect, table string) *env {
	e := &env{t: t, dialect: d, db: openDB(t, d), table: table}
	var err error
	e.store, err = outbox.New(e.db, outbox.Config{Dialect: d, Table: e.table})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Migrate(ctx); err != nil {
		t.Fatalf("Migrate must be idempotent: %v", err)
	}
	for _, stmt := range []string{`CREATE TABLE ` + e.table + `_orders (id VARCHAR(64) PRIMARY KEY, amount INT NOT NULL)`} {
		if _, err := e.db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, tbl := range []string{e.table, e.table + "_published", e.table + "_failed", e.table + "_orders", e.table + "_inbox", e.table + "_effects"} {
			_, _ = e.db.Exec(`DROP TABLE IF EXISTS ` + tbl)
		}
	})
	e.client = sdk.NewClient(memory.New(), sdk.WithLogger(quiet))
	t.Cleanup(func() { e.client.Close(context.Background()) })
	return e
}

// order writes a business row and its messages in one transaction, then
// commits or rolls back.
func (e *env) order(id string, commit bool, msgs ...*sdk.Message) {
	e.t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := tx.Exec(bind(e.dialect, `INSERT INTO `+e.table+`_orders (id, amount) VALUES (?, ?)`), id, 42); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.Add(ctx, tx, "orders", msgs...); err != nil {
		e.t.Fatal(err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

func bind(d outbox.Dialect, q string) string {
	if d != outbox.Postgres {
		return q
	}
	n := 0
	var b strings.Builder
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// received records what a consumer group got.
type received struct {
	mu    sync.Mutex
	ids   []string
	count map[string]int
	byKey map[string][]int // ordering key -> seq numbers in arrival order
	any   chan struct{}
}

func (e *env) consume(group string) *received {
	r := &received{count: map[string]int{}, byKey: map[string][]int{}, any: make(chan struct{}, 1)}
	_, err := e.client.Subscribe(context.Background(), "orders", group, func(_ context.Context, m *sdk.Message) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ids = append(r.ids, m.ID)
		r.count[m.ID]++
		if m.OrderingKey != "" {
			n, _ := strconv.Atoi(m.Get("n"))
			r.byKey[m.OrderingKey] = append(r.byKey[m.OrderingKey], n)
		}
		select {
		case r.any <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.count)
}

func (r *received) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := 0
	for _, n := range r.count {
		d += n - 1
	}
	return d
}

// checkOrder fails if any ordering key arrived out of order.
func (r *received) checkOrder(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, seqs := range r.byKey {
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] {
				t.Fatalf("ordering key %q arrived out of order: %d after %d", k, seqs[i], seqs[i-1])
			}
		}
	}
}

// requireNothingUnsent fails the test, saying why it matters, unless the
// outbox is empty.
func (e *env) requireNothingUnsent(why string) {
	e.t.Helper()
	if lag, err := e.store.Lag(context.Background()); err != nil || lag.Unsent != 0 {
		e.t.Fatalf("%s: %+v, %v", why, lag, err)
	}
}

func keyed(key string, n int) *sdk.Message {
	m := sdk.NewMessage([]byte(fmt.Sprintf("%s-%d", key, n)))
	m.OrderingKey = key
	m.EventType = "order.created"
	m.Set("n", strconv.Itoa(n))
	return m
}

// inbox is the "shipping" consumer's inbox on the env's database, migrated.
func (e *env) inbox() *outbox.Inbox {
	e.t.Helper()
	inbox, err := outbox.NewInbox(e.db, outbox.InboxConfig{Dialect: e.dialect, Table: e.table + "_inbox", Consumer: "shipping"})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := inbox.Migrate(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return inbox
}

func (e *env) relay(cfg outbox.RelayConfig) *outbox.Relay {
	e.t.Helper()
	if cfg.Publisher == nil {
		cfg.Publisher = e.client
	}
	cfg.Logger = quiet
	r, err := e.store.NewRelay(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestRollbackPublishesNothingCommitPublishesOnce(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		relay := e.relay(outbox.RelayConfig{})
		ctx := context.Background()

		e.order("rolled-back", false, sdk.NewMessage([]byte("never")))
		if n, err := relay.RunOnce(ctx); err != nil || n != 0 {
			t.Fatalf("after a rollback the relay published %d (err %v), want 0", n, err)
		}
		committed := &sdk.Message{Payload: []byte("\x00binary\xff"), EventType: "order.created", CorrelationID: "c-1", Metadata: map[string]string{"tenant": "ünï"}}
		e.order("committed", true, committed)
		if n, err := relay.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("after a commit the relay published %d (err %v), want 1", n, err)
		}
		if n, err := relay.RunOnce(ctx); err != nil || n != 0 {
			t.Fatalf("a second run published %d (err %v), want 0: a message goes out once per relay run", n, err)
		}
		testenv.Eventually(t, 10*time.Second, "the committed message to be consumed", func() bool { return got.distinct() == 1 })
		got.mu.Lock()
		defer got.mu.Unlock()
		if got.ids[0] != committed.ID || got.count[committed.ID] != 1 {
			t.Fatalf("consumed %v, want exactly %s once", got.ids, committed.ID)
		}
		e.requireNothingUnsent("lag after publishing")
	})
}

func TestStandardAttributesSurviveTheOutbox(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := make(chan *sdk.Message, 1)
		if _, err := e.client.Subscribe(context.Background(), "orders", "audit", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
			t.Fatal(err)
		}
		sent := &sdk.Message{Payload: []byte("\x00\xff{}"), EventType: "order.created", Source: "orders", ContentType: "application/json",
			CorrelationID: "corr", CausationID: "cause", OrderingKey: "o-1", Time: time.Date(2026, 3, 4, 5, 6, 7, 891, time.UTC),
			Metadata: map[string]string{"ключ": "значение"}}
		e.order("o-1", true, sent)
		if _, err := e.relay(outbox.RelayConfig{}).RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.ID != sent.ID || string(m.Payload) != "\x00\xff{}" || m.EventType != sent.EventType || m.Source != sent.Source ||
				m.ContentType != sent.ContentType || m.CorrelationID != "corr" || m.CausationID != "cause" || m.OrderingKey != "o-1" ||
				!m.Time.Equal(sent.Time) || m.Get("ключ") != "значение" {
				t.Fatalf("message changed on its way through the outbox:\nsent %+v\ngot  %+v", sent, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing consumed")
		}
	})
}

// stopAfterPublish publishes, then stops the relay (cancels its context).
// With fail it also reports a failure, so the relay does not mark the batch:
// the crash window of an outbox.
type stopAfterPublish struct {
	inner  outbox.Publisher
	cancel context.CancelFunc
	fail   bool
}

func (s *stopAfterPublish) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	err := s.inner.Publish(ctx, topic, msgs...)
	s.cancel()
	if s.fail {
		return errors.Join(err, context.Canceled) // the relay dies before marking
	}
	return err
}

func TestRelayKilledBetweenPublishAndMarkLosesNothingAndInboxMakesItOnce(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		inbox := e.inbox()
		if _, err := e.db.Exec(`CREATE TABLE ` + e.table + `_effects (message_id VARCHAR(64) NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		var deliveries atomic.Int32
		_, err := e.client.Subscribe(context.Background(), "orders", "shipping", func(ctx context.Context, m *sdk.Message) error {
			deliveries.Add(1)
			return inbox.Handler(func(ctx context.Context, tx *sql.Tx, m *sdk.Message) error {
				_, err := tx.ExecContext(ctx, bind(e.dialect, `INSERT INTO `+e.table+`_effects (message_id) VALUES (?)`), m.ID)
				return err
			})(ctx, m)
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			e.order(fmt.Sprint("o", i), true, keyed("k", i))
		}
		ctx, cancel := context.WithCancel(context.Background())
		crashing := e.relay(outbox.RelayConfig{Name: "crashing", Lease: 300 * time.Millisecond, PublishAttempts: 1,
			Publisher: &stopAfterPublish{inner: e.client, cancel: cancel, fail: true}})
		if _, err := crashing.RunOnce(ctx); err == nil {
			t.Fatal("the crashing relay should report its failure")
		}
		if lag, _ := e.store.Lag(context.Background()); lag.Unsent != 5 {
			t.Fatalf("published but unmarked messages must stay in the outbox: unsent = %d, want 5", lag.Unsent)
		}
		// Another relay takes over once the dead one's lease has run out.
		survivor := e.relay(outbox.RelayConfig{Name: "survivor", Lease: time.Minute})
		testenv.Eventually(t, 10*time.Second, "the survivor to republish after the lease", func() bool {
			_, _ = survivor.RunOnce(context.Background())
			lag, _ := e.store.Lag(context.Background())
			return lag.Unsent == 0
		})
		testenv.Eventually(t, 10*time.Second, "every delivery to be handled", func() bool { return deliveries.Load() >= 10 })
		var effects, distinct int
		if err := e.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT message_id) FROM `+e.table+`_effects`).Scan(&effects, &distinct); err != nil {
			t.Fatal(err)
		}
		if distinct != 5 || effects != 5 {
			t.Fatalf("with %d deliveries the inbox should leave one effect per message: %d effects for %d messages, want 5 and 5", deliveries.Load(), effects, distinct)
		}
	})
}

// outage fails every publish while down is set, like a broker that is away.
type outage struct {
	inner outbox.Publisher
	down  atomic.Bool
	tried atomic.Int32
}

func (o *outage) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	if o.down.Load() {
		o.tried.Add(1)
		return errors.New("broker unreachable")
	}
	return o.inner.Publish(ctx, topic, msgs...)
}

func TestBrokerOutageBacklogGrowsThenDrainsInOrder(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		pub := &outage{inner: e.client}
		pub.down.Store(true)
		relay := e.relay(outbox.RelayConfig{Publisher: pub, MaxPoll: 50 * time.Millisecond, PublishAttempts: 1, BatchSize: 37})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- relay.Run(ctx) }()

		keys := []string{"a", "b", "c", "d", "e"}
		for i := 0; i < 40; i++ {
			msgs := make([]*sdk.Message, len(keys))
			for j, k := range keys {
				msgs[j] = keyed(k, i)
			}
			e.order(fmt.Sprint("o", i), true, msgs...)
		}
		testenv.Eventually(t, 10*time.Second, "the relay to try during the outage", func() bool { return pub.tried.Load() >= 3 })
		lag, err := e.store.Lag(context.Background())
		if err != nil || lag.Unsent != 200 || lag.OldestAge <= 0 {
			t.Fatalf("during the outage the lag must show the whole backlog: %+v, %v", lag, err)
		}
		if got.distinct() != 0 {
			t.Fatal("nothing can be consumed while the broker is down")
		}
		pub.down.Store(false)
		testenv.Eventually(t, 30*time.Second, "the backlog to drain", func() bool { return got.distinct() == 200 })
		got.checkOrder(t)
		// A batch reaches consumers before the relay records it as sent,
		// so the lag catches up a moment after the last delivery.
		testenv.Eventually(t, 10*time.Second, "the lag to drop to zero after draining", func() bool {
			lag, err = e.store.Lag(context.Background())
			return err == nil && lag.Unsent == 0 && lag.OldestAge == 0
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run should end with the context: %v", err)
		}
	})
}

func TestConcurrentRelaysPublishTenThousandWithoutLossOrDuplicates(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for i := 0; i < 3; i++ {
			r := e.relay(outbox.RelayConfig{Name: fmt.Sprint("relay-", i), BatchSize: 200})
			wg.Add(1)
			go func() { defer wg.Done(); _ = r.Run(ctx) }()
		}
		const total = 10000
		keys := []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"}
		n := 0
		for batch := 0; n < total; batch++ {
			msgs := make([]*sdk.Message, 0, 100)
			for len(msgs) < 100 && n < total {
				if n%3 == 0 {
					msgs = append(msgs, sdk.NewMessage([]byte("unkeyed")))
				} else {
					msgs = append(msgs, keyed(keys[n%len(keys)], n))
				}
				n++
			}
			e.order(fmt.Sprint("o", batch), true, msgs...)
		}
		testenv.Eventually(t, 120*time.Second, "all 10,000 messages to be consumed", func() bool { return got.distinct() == total })
		cancel()
		wg.Wait()
		if d := got.duplicates(); d != 0 {
			t.Fatalf("%d duplicates with no relay failing; duplicates are only expected after a relay dies or outlives its lease", d)
		}
		got.checkOrder(t)
	})
}

func TestRetentionKeepsPublishedRowsUntilCleanup(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		e.order("o1", true, sdk.NewMessage([]byte("x")), sdk.NewMessage([]byte("y")))
		relay := e.relay(outbox.RelayConfig{Retention: time.Hour})
		if n, err := relay.RunOnce(context.Background()); err != nil || n != 2 {
			t.Fatalf("RunOnce: %d, %v", n, err)
		}
		kept := `SELECT COUNT(*) FROM ` + e.table + ` WHERE sent_ms IS NOT NULL`
		if e.dialect == outbox.Postgres {
			kept = `SELECT COUNT(*) FROM ` + e.table + `_published WHERE sent_ms IS NOT NULL`
		}
		var rows int
		if err := e.db.QueryRow(kept).Scan(&rows); err != nil || rows != 2 {
			t.Fatalf("with a retention the published rows are kept, marked sent: %d, %v", rows, err)
		}
		e.requireNothingUnsent("kept rows are not waiting")
		if n, err := e.store.Cleanup(context.Background(), time.Hour); err != nil || n != 0 {
			t.Fatalf("rows younger than the retention must stay: deleted %d, %v", n, err)
		}
		if n, err := e.store.Cleanup(context.Background(), -time.Second); err != nil || n != 2 {
			t.Fatalf("rows older than the cut-off are deleted: deleted %d, %v", n, err)
		}
	})
}

func TestInboxProcessesEachMessageOnce(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		inbox := e.inbox()
		var runs atomic.Int32
		fail := atomic.Bool{}
		fail.Store(true)
		h := inbox.Handler(func(ctx context.Context, tx *sql.Tx, m *sdk.Message) error {
			runs.Add(1)
			if fail.Load() {
				return errors.New("downstream failed") // rolls back the claim too
			}
			return nil
		})
		msg := sdk.NewMessage(nil)
		if err := h(context.Background(), msg); err == nil {
			t.Fatal("the handler's error must come back (the message is redelivered)")
		}
		fail.Store(false)
		// The redelivery runs again; later duplicates, even concurrent ones, do not.
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h(context.Background(), msg); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if runs.Load() != 2 {
			t.Fatalf("handler ran %d times; want 2 (the failed try, then once)", runs.Load())
		}
		other, _ := outbox.NewInbox(e.db, outbox.InboxConfig{Dialect: e.dialect, Table: e.table + "_inbox", Consumer: "billing"})
		tx, _ := e.db.Begin()
		first, err := other.Claim(context.Background(), tx, msg.ID)
		_ = tx.Commit()
		if err != nil || !first {
			t.Fatalf("another consumer processes the same message once too: first=%v err=%v", first, err)
		}
		if n, err := inbox.Cleanup(context.Background(), -time.Second); err != nil || n != 2 {
			t.Fatalf("Cleanup deleted %d, %v; want the 2 records", n, err)
		}
	})
}

// Ids a column could cut, change or compare equal to another (past 255
// characters, trailing spaces, invalid UTF-8, NUL) are each claimed once,
// and none is taken for another: the inbox would skip such a message as
// processed.
func TestInboxTellsApartIDsTheColumnWouldConfuse(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		inbox := e.inbox()
		long := strings.Repeat("p", 255)
		for _, id := range []string{"id", "id ", "ID", long + "a", long + "b", "a\xff", "a\xfe", "a\x00b", "a\x00c"} {
			for _, want := range []bool{true, false} {
				tx, err := e.db.Begin()
				if err != nil {
					t.Fatal(err)
				}
				first, err := inbox.Claim(context.Background(), tx, id)
				if cerr := tx.Commit(); err == nil {
					err = cerr
				}
				if err != nil || first != want {
					t.Fatalf("claim of %.20q (%d bytes): first=%v err=%v; want first=%v (each id once, none taken for another)", id, len(id), first, err, want)
				}
			}
		}
	})
}

func TestConfigErrors(t *testing.T) {
	db, _ := sql.Open("sqlite", ":memory:")
	defer db.Close()
	if _, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite}); err == nil || !strings.Contains(err.Error(), "SetMaxOpenConns(1)") {
		t.Fatalf("a SQLite pool of several connections must be refused with the fix, got %v", err)
	}
	if _, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: outbox.SQLite, Consumer: "c"}); err == nil || !strings.Contains(err.Error(), "SetMaxOpenConns(1)") {
		t.Fatalf("a SQLite pool of several connections must be refused by the inbox too, got %v", err)
	}
	db.SetMaxOpenConns(1)
	for _, c := range []struct {
		cfg  outbox.Config
		want string
	}{
		{outbox.Config{}, "Dialect is empty"},
		{outbox.Config{Dialect: "oracle"}, `unknown dialect "oracle"`},
		{outbox.Config{Dialect: outbox.SQLite, Table: "outbox; DROP TABLE x"}, "not a plain SQL identifier"},
		// PostgreSQL would cut <table>_published_sent, and <table>_published
		// could become the outbox table itself.
		{outbox.Config{Dialect: outbox.Postgres, Table: strings.Repeat("t", 49)}, "at most 48"},
	} {
		if _, err := outbox.New(db, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): want %q, got %v", c.cfg, c.want, err)
		}
	}
	store, _ := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if _, err := store.NewRelay(outbox.RelayConfig{}); err == nil || !strings.Contains(err.Error(), "Publisher is nil") {
		t.Errorf("NewRelay without a publisher: %v", err)
	}
	if _, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: outbox.SQLite, Consumer: "c", Table: strings.Repeat("i", 54)}); err == nil || !strings.Contains(err.Error(), "at most 53") {
		t.Errorf("NewInbox with a table name too long for its index: %v", err)
	}
	if _, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite, Table: strings.Repeat("t", 48)}); err != nil {
		t.Errorf("a 48-character table name is fine: %v", err)
	}
	if _, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: outbox.SQLite}); err == nil || !strings.Contains(err.Error(), "Consumer is empty") {
		t.Errorf("NewInbox without a consumer: %v", err)
	}
	if err := store.Add(context.Background(), nil, "t", sdk.NewMessage(nil)); err == nil || !strings.Contains(err.Error(), "tx is nil") {
		t.Errorf("Add without a transaction: %v", err)
	}
}

// A consumer name the inbox table would not keep or compare exactly is a
// config error naming it.
func TestInboxConsumerNameIsChecked(t *testing.T) {
	db, _ := sql.Open("sqlite", ":memory:")
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, c := range []struct {
		d        outbox.Dialect
		consumer string
		says     string
	}{
		{outbox.SQLite, "shipping ", "spaces around it"},
		{outbox.SQLite, "ship\xffping", "not valid UTF-8"},
		{outbox.Postgres, "ship\x00ping", "NUL"},
		{outbox.MySQL, strings.Repeat("c", 256), "255 characters"},
	} {
		if _, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: c.d, Consumer: c.consumer}); err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "InboxConfig.Consumer") {
			t.Errorf("%s, consumer %.20q: want a config error naming InboxConfig.Consumer and saying %q, got %v", c.d, c.consumer, c.says, err)
		}
	}
	in, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: outbox.SQLite, Consumer: "shipping"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Claim(context.Background(), nil, "m-1"); err == nil || !strings.Contains(err.Error(), "tx is nil") {
		t.Errorf("Claim without a transaction: want an error saying tx is nil, got %v", err)
	}
}

// refusing publishes through next, refusing a call holding a message whose
// payload is "poison" as the SDK refuses a payload larger than the broker
// carries, before any network call.
type refusing struct{ next outbox.Publisher }

func (p refusing) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	if topic == "refused.topic" {
		return sdk.InvalidName(fmt.Errorf("driver: topic %q is not one this broker takes", topic))
	}
	for i, m := range msgs {
		if string(m.Payload) == "poison" {
			return fmt.Errorf("messaging: publish to %q: message %d (id %q): %w: 1048577 bytes, driver test carries at most 1048576", topic, i, m.ID, sdk.ErrPayloadTooLarge)
		}
	}
	return p.next.Publish(ctx, topic, msgs...)
}

// A message the publisher refuses for good, and one whose row cannot be
// read, are set aside with the reason instead of holding back everything
// committed after them; the rest go out, each key in order.
func TestRefusedMessageIsSetAsideAndTheRestGoOut(t *testing.T) {
	for _, retention := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("retention ", retention), func(t *testing.T) { setAsideAndGoOn(t, retention) })
	}
}

func setAsideAndGoOn(t *testing.T, retention time.Duration) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		poison := keyed("k", 2)
		poison.Payload = []byte("poison")
		unreadable := keyed("u", 1)
		e.order("o-1", true, keyed("k", 1), poison, keyed("k", 3), unreadable, keyed("u", 2))
		if _, err := e.db.Exec(bind(e.dialect, `UPDATE `+e.table+` SET metadata = ? WHERE id = ?`), "not json", unreadable.ID); err != nil {
			t.Fatal(err)
		}
		misnamed := keyed("u", 3)
		if err := e.store.InTx(context.Background(), func(tx *sql.Tx) error {
			return e.store.Add(context.Background(), tx, "refused.topic", misnamed)
		}); err != nil {
			t.Fatal(err)
		}
		r := e.relay(outbox.RelayConfig{Publisher: refusing{e.client}, PublishAttempts: 5, Retention: retention})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for {
			if _, err := r.RunOnce(ctx); err != nil {
				t.Fatalf("a refused message must not fail the batch: %v", err)
			}
			if lag, err := e.store.Lag(ctx); err != nil || lag.Unsent == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("the outbox did not empty within 30s: a refused message holds it back")
			}
		}
		deadline := time.After(15 * time.Second)
		for got.distinct() < 3 {
			select {
			case <-got.any:
			case <-deadline:
				t.Fatalf("the consumer got %d of the 3 publishable messages within 15s", got.distinct())
			}
		}
		got.mu.Lock()
		k, u := got.byKey["k"], got.byKey["u"]
		got.mu.Unlock()
		if fmt.Sprint(k) != "[1 3]" || fmt.Sprint(u) != "[2]" {
			t.Fatalf("want key k's messages 1 and 3 and key u's 2, in order; got k %v, u %v", k, u)
		}
		aside, err := e.store.SetAside(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(aside) != 3 || aside[0].ID != poison.ID || !strings.Contains(aside[0].Reason, "payload too large") ||
			aside[1].ID != unreadable.ID || !strings.Contains(aside[1].Reason, "unreadable row") || aside[0].Topic != "orders" || aside[0].OrderingKey != "k" ||
			aside[2].ID != misnamed.ID || aside[2].Topic != "refused.topic" || !strings.Contains(aside[2].Reason, "not one this broker takes") {
			t.Fatalf("want the poison, the unreadable message and the one to a refused topic set aside with their reasons, got %+v", aside)
		}
		if lag, err := e.store.Lag(ctx); err != nil || lag.Unsent != 0 || lag.SetAside != 3 {
			t.Fatalf("Lag must count the 3 messages set aside apart from the unsent: got %+v, %v", lag, err)
		}
		if n, err := r.RunOnce(ctx); n != 0 || err != nil {
			t.Fatalf("a set-aside message is not relayed again: %d, %v", n, err)
		}
	})
}
