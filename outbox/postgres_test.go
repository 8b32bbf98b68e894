package outbox_test

import (
	"context"

	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	_ "github.com/msgkit/msgkit/adapters/rabbitmq"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

func TestAddInPgxTransaction(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	pool, err := pgxpool.New(context.Background(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	got := e.consume("billing")
	ctx := context.Background()
	for _, commit := range []bool{false, true} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, 1)`, fmt.Sprint("pgx-", commit)); err != nil {
			t.Fatal(err)
		}
		if err := e.store.Add(ctx, outbox.Pgx(tx), "orders", sdk.NewMessage([]byte(fmt.Sprint(commit)))); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.relay(outbox.RelayConfig{}).RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("the committed pgx transaction's message only: published %d, %v", n, err)
	}
	testenv.Eventually(t, 10*time.Second, "the message", func() bool { return got.distinct() == 1 })
}

// With polling effectively off, only the NOTIFY that each way of adding
// sends can wake the relay. The table's name has capitals: PostgreSQL folds
// it, in LISTEN too, and the notification must use the folded name.
func TestNotifyWakesTheRelayWithoutPolling(t *testing.T) {
	e := newEnvNamed(t, outbox.Postgres, "Ob_"+randomName("Notify_"))
	pool, err := pgxpool.New(context.Background(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	got := e.consume("billing")
	relay := e.relay(outbox.RelayConfig{MinPoll: time.Hour, MaxPoll: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)
	ways := []struct {
		name string
		add  func(id string) error
	}{
		{"Add", func(id string) error { e.order(id, true, sdk.NewMessage([]byte("wake up"))); return nil }},
		{"ExecAndAdd", func(id string) error {
			tx, err := e.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := e.store.ExecAndAdd(ctx, tx, `INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, 1)`, []any{id}, "orders", sdk.NewMessage([]byte("wake up"))); err != nil {
				return err
			}
			return tx.Commit()
		}},
		{"QueueAdd", func(id string) error {
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			batch := &pgx.Batch{}
			batch.Queue(`INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, 1)`, id)
			if err := e.store.QueueAdd(context.Background(), batch, "orders", sdk.NewMessage([]byte("wake up"))); err != nil {
				return err
			}
			if err := tx.SendBatch(ctx, batch).Close(); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
	}
	// Two messages each: a wake-up left over from an earlier one (the
	// relay's catch-up after LISTEN, or a NOTIFY whose batch an earlier
	// wake-up already took) can carry one message, not two in turn.
	n := 0
	for _, way := range ways {
		for range 2 {
			n++
			if err := way.add(fmt.Sprint("n", n)); err != nil {
				t.Fatalf("%s: %v", way.name, err)
			}
			testenv.Eventually(t, 5*time.Second, fmt.Sprintf("message %d, written with %s, to be relayed on its NOTIFY", n, way.name), func() bool { return got.distinct() == n })
		}
	}
}

// A real broker outage: RabbitMQ is stopped while orders keep committing; the
// lag grows, and everything is delivered in key order once it is back.
func TestRabbitMQOutageBacklogDrains(t *testing.T) {
	url := testenv.RabbitMQ(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		if testenv.InCI() {
			t.Fatal("CI=true: rabbitmqctl is needed to stop and start the broker")
		}
		t.Skip("rabbitmqctl not found")
	}
	e := newEnv(t, outbox.Postgres)
	client, err := sdk.Open(context.Background(), sdk.Config{Driver: "rabbitmq", URL: url,
		Options: map[string]string{"publish_timeout": "2s"}}, sdk.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	topic := randomName("ct-outbox-")
	t.Cleanup(func() {
		if conn, err := amqp.Dial(url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(topic+".billing", false, false, false)
				_ = ch.ExchangeDelete(topic, false, false)
			}
			conn.Close()
		}
	})
	var mu sync.Mutex
	seen := map[string]bool{}
	last := map[string]int{}
	var orderErr error
	if _, err := client.Subscribe(context.Background(), topic, "billing", func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		var n int
		fmt.Sscan(m.Get("n"), &n)
		if prev, ok := last[m.OrderingKey]; ok && n < prev && !seen[m.ID] && orderErr == nil {
			orderErr = fmt.Errorf("key %s: %d after %d", m.OrderingKey, n, prev)
		}
		last[m.OrderingKey] = n
		seen[m.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	relay, err := e.store.NewRelay(outbox.RelayConfig{Publisher: client, MaxPoll: 100 * time.Millisecond, PublishAttempts: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)
	add := func(from, to int) {
		tx, _ := e.db.Begin()
		for i := from; i < to; i++ {
			if err := e.store.Add(context.Background(), tx, topic, keyed(fmt.Sprint("k", i%4), i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	add(0, 50)
	testenv.Eventually(t, 20*time.Second, "the first orders to arrive", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 50 })

	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("stop_app: %v %s", err, out)
	}
	started := false
	defer func() {
		if !started {
			exec.Command("rabbitmqctl", "start_app").Run()
		}
	}()
	add(50, 250)
	testenv.Eventually(t, 20*time.Second, "the backlog to show in the lag", func() bool {
		lag, err := e.store.Lag(context.Background())
		return err == nil && lag.Unsent == 200 && lag.OldestAge > 0
	})
	if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
		t.Fatalf("start_app: %v %s", err, out)
	}
	started = true
	testenv.Eventually(t, 60*time.Second, "the backlog to drain after the broker returned", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 250
	})
	mu.Lock()
	if orderErr != nil {
		mu.Unlock()
		t.Fatalf("per-key order broken across the outage: %v", orderErr)
	}
	mu.Unlock()
	// Consumers see a batch before the relay records it as sent.
	testenv.Eventually(t, 10*time.Second, "the lag to drop to zero after draining", func() bool {
		lag, err := e.store.Lag(context.Background())
		return err == nil && lag.Unsent == 0
	})
	cancel()

}

func TestQueueAddSharesTheBusinessBatch(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	pool, err := pgxpool.New(context.Background(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	got := e.consume("billing")
	ctx := context.Background()
	for _, commit := range []bool{false, true} {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		batch := &pgx.Batch{}
		batch.Queue(`INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, 1)`, fmt.Sprint("batch-", commit))
		if err := e.store.QueueAdd(context.Background(), batch, "orders", sdk.NewMessage([]byte("queued")), sdk.NewMessage([]byte("queued too"))); err != nil {
			t.Fatal(err)
		}
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.relay(outbox.RelayConfig{}).RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("only the committed batch's 2 messages: published %d, %v", n, err)
	}
	testenv.Eventually(t, 10*time.Second, "the messages", func() bool { return got.distinct() == 2 })
	sqlite := newEnv(t, outbox.SQLite)
	if err := sqlite.store.QueueAdd(context.Background(), &pgx.Batch{}, "orders", sdk.NewMessage(nil)); err == nil {
		t.Fatal("QueueAdd on a SQLite store must fail")
	}
}

// Tables made by earlier versions kept published rows (sent_ms set) and
// had partial indexes and a NOTIFY trigger. Migrate moves the rows to the
// published table and removes the rest, or every Add keeps paying for them
// (and relays are woken twice).
func TestMigrateUpgradesWhatEarlierVersionsMade(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	e.order("o1", true, sdk.NewMessage([]byte("kept")), sdk.NewMessage([]byte("waiting")))
	old := []string{
		`UPDATE ` + e.table + ` SET sent_ms = 1 WHERE seq = (SELECT min(seq) FROM ` + e.table + `)`,
		`CREATE INDEX ` + e.table + `_unsent ON ` + e.table + ` (seq) WHERE sent_ms IS NULL`,
		`CREATE INDEX ` + e.table + `_sent ON ` + e.table + ` (sent_ms) WHERE sent_ms IS NOT NULL`,
		`CREATE INDEX ` + e.table + `_unsent_key ON ` + e.table + ` (ordering_key, seq) WHERE sent_ms IS NULL AND ordering_key <> ''`,
		`CREATE FUNCTION ` + e.table + `_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('` + e.table + `', ''); RETURN NULL; END $$`,
		`CREATE TRIGGER ` + e.table + `_notify AFTER INSERT ON ` + e.table + ` FOR EACH STATEMENT EXECUTE FUNCTION ` + e.table + `_notify()`,
	}
	for _, stmt := range old {
		if _, err := e.db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // and again: Migrate is idempotent
		if err := e.store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var indexes, triggers, functions, kept, waiting int
	var keptPayload string
	if err := e.db.QueryRow(`SELECT
  (SELECT COUNT(*) FROM pg_indexes WHERE indexname IN ($1 || '_unsent', $1 || '_sent', $1 || '_unsent_key')),
  (SELECT COUNT(*) FROM pg_trigger WHERE tgname = $1 || '_notify'),
  (SELECT COUNT(*) FROM pg_proc WHERE proname = $1 || '_notify'),
  (SELECT COUNT(*) FROM `+e.table+`_published WHERE sent_ms = 1),
  (SELECT COUNT(*) FROM `+e.table+`),
  (SELECT encode(payload, 'escape') FROM `+e.table+`_published)`, e.table).Scan(&indexes, &triggers, &functions, &kept, &waiting, &keptPayload); err != nil {
		t.Fatal(err)
	}
	if indexes+triggers+functions != 0 {
		t.Fatalf("after Migrate: %d old index(es), %d trigger, %d function left; want none", indexes, triggers, functions)
	}
	if kept != 1 || keptPayload != "kept" || waiting != 1 {
		t.Fatalf("the published row must move to the published table and the waiting one stay: %d moved (%q), %d left", kept, keptPayload, waiting)
	}
}
