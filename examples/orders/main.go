// Command orders shows the transactional outbox and inbox end to end: an
// order service writes each order row and its OrderCreated message in one
// transaction, a relay publishes the messages, and a shipping service
// consumes them through an inbox so that a redelivered message creates no
// second shipment. One order is rolled back and so never published.
//
// It runs on SQLite and the in-process broker by default:
//
//	go run ./examples/orders
//
// and on PostgreSQL (or MariaDB) and any broker by configuration:
//
//	MESSAGING_DRIVER=rabbitmq MESSAGING_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	  go run ./examples/orders -db postgres -dsn 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

const topic = "orders.events"

type options struct {
	db         string // sqlite, postgres, mysql
	dsn        string
	configPath string
	orders     int
	timeout    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.db, "db", "sqlite", "database: sqlite, postgres or mysql")
	flag.StringVar(&o.dsn, "dsn", "", "database DSN (default: a SQLite file in a temporary directory)")
	flag.StringVar(&o.configPath, "config", "", "messaging YAML config (MESSAGING_* environment variables override it)")
	flag.IntVar(&o.orders, "orders", 5, "orders to place")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

func openDB(o options) (*sql.DB, outbox.Dialect, func(), error) {
	cleanup := func() {}
	driver := map[string]string{"sqlite": "sqlite", "postgres": "pgx", "mysql": "mysql"}[o.db]
	if driver == "" {
		return nil, "", cleanup, fmt.Errorf("-db %q: want sqlite, postgres or mysql", o.db)
	}
	dsn := o.dsn
	if o.db == "sqlite" && dsn == "" {
		dir, err := os.MkdirTemp("", "orders-example-")
		if err != nil {
			return nil, "", cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		dsn = "file:" + filepath.Join(dir, "orders.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate"
	}
	if dsn == "" {
		return nil, "", cleanup, fmt.Errorf("-db %s needs -dsn", o.db)
	}
	db, err := sql.Open(driver, dsn)
	if err == nil {
		if o.db == "sqlite" {
			db.SetMaxOpenConns(1) // SQLite has one writer: the app and the relay take turns on one connection
		}
		err = db.Ping()
	}
	if err != nil {
		cleanup()
		return nil, "", func() {}, fmt.Errorf("open %s database: %w", o.db, err)
	}
	return db, outbox.Dialect(map[string]string{"sqlite": "sqlite", "postgres": "postgres", "mysql": "mysql"}[o.db]), func() { db.Close(); cleanup() }, nil
}

func run(o options, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}

	db, dialect, closeDB, err := openDB(o)
	if err != nil {
		return err
	}
	defer closeDB()
	// Tables of this run only, so runs against a shared database do not mix.
	suffix := strings.ReplaceAll(sdk.NewMessage(nil).ID[:8], "-", "")
	ordersTable, shipmentsTable := "example_orders_"+suffix, "example_shipments_"+suffix
	store, err := outbox.New(db, outbox.Config{Dialect: dialect, Table: "example_outbox_" + suffix})
	if err != nil {
		return err
	}
	inbox, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: dialect, Table: "example_inbox_" + suffix, Consumer: "shipping"})
	if err != nil {
		return err
	}
	for _, migrate := range []func(context.Context) error{store.Migrate, inbox.Migrate} {
		if err := migrate(ctx); err != nil {
			return err
		}
	}
	for _, ddl := range []string{
		`CREATE TABLE ` + ordersTable + ` (id VARCHAR(64) PRIMARY KEY, customer VARCHAR(64) NOT NULL)`,
		`CREATE TABLE ` + shipmentsTable + ` (order_id VARCHAR(64) PRIMARY KEY)`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	defer func() {
		for _, t := range []string{ordersTable, shipmentsTable, "example_outbox_" + suffix, "example_inbox_" + suffix} {
			_, _ = db.Exec(`DROP TABLE IF EXISTS ` + t)
		}
		if dialect == outbox.Postgres {
			_, _ = db.Exec(`DROP FUNCTION IF EXISTS example_outbox_` + suffix + `_notify()`)
		}
	}()

	cfg, err := sdk.LoadConfig(o.configPath)
	if err != nil {
		return err
	}
	client, err := sdk.Open(ctx, cfg, sdk.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	say("database %s, broker %s", o.db, cfg)

	// The shipping service: one shipment per order, however often the
	// OrderCreated message arrives.
	var shipped sync.WaitGroup
	shipped.Add(o.orders)
	duplicate := make(chan struct{}, 1)
	_, err = client.Subscribe(context.Background(), topic, "shipping", func(ctx context.Context, m *sdk.Message) error {
		if m.Get("run") != suffix {
			return nil // left over from an earlier run on the same broker
		}
		first := false
		err := inbox.Handler(func(ctx context.Context, tx *sql.Tx, m *sdk.Message) error {
			first = true
			_, err := tx.ExecContext(ctx, bind(dialect, `INSERT INTO `+shipmentsTable+` (order_id) VALUES (?)`), m.Get("order"))
			return err
		})(ctx, m)
		if err != nil {
			return err
		}
		if first {
			say("[shipping] %s received -> shipment created (same transaction as the inbox record)", m.Get("order"))
			shipped.Done()
		} else {
			say("[shipping] %s received again -> already in the inbox, nothing done", m.Get("order"))
			select {
			case duplicate <- struct{}{}:
			default:
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()

	// The order service.
	var first *sdk.Message
	for i := 1; i <= o.orders+1; i++ {
		id := fmt.Sprintf("order-%d", i)
		commit := i != 3 // order-3 fails validation and rolls back
		msg := &sdk.Message{Payload: []byte(fmt.Sprintf(`{"order":%q}`, id)), EventType: "order.created",
			ContentType: "application/json", OrderingKey: "customer-7"}
		msg.Set("order", id)
		msg.Set("run", suffix)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		// The order row and its message in one statement (on PostgreSQL; a
		// statement each elsewhere), in one transaction. store.Add(ctx, tx,
		// topic, msg) after the INSERT does the same with a statement of
		// its own.
		if _, err := store.ExecAndAdd(ctx, tx, bind(dialect, `INSERT INTO `+ordersTable+` (id, customer) VALUES (?, ?)`), []any{id, "customer-7"}, topic, msg); err != nil {
			tx.Rollback()
			return err
		}
		if !commit {
			if err := tx.Rollback(); err != nil {
				return err
			}
			say("[orders]   %s rolled back -> its OrderCreated is never published", id)
			continue
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		if first == nil {
			first = msg
		}
		say("[orders]   %s committed with its OrderCreated in the outbox", id)
	}

	waitDone := make(chan struct{})
	go func() { shipped.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-ctx.Done():
		return fmt.Errorf("not every order was shipped within %v: %w", o.timeout, ctx.Err())
	}

	// The broker may deliver a message again (at least once). Simulate it:
	// the inbox turns the duplicate into a no-op.
	if err := client.Publish(ctx, topic, first); err != nil {
		return err
	}
	select {
	case <-duplicate:
	case <-ctx.Done():
		return errors.New("the duplicate delivery did not arrive")
	}
	stopRelay()
	<-relayDone

	var orders, shipments int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+ordersTable).Scan(&orders); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+shipmentsTable).Scan(&shipments); err != nil {
		return err
	}
	lag, err := store.Lag(ctx)
	if err != nil {
		return err
	}
	say("done: %d orders committed, %d shipments, outbox lag %d", orders, shipments, lag.Unsent)
	if orders != shipments || lag.Unsent != 0 {
		return fmt.Errorf("expected one shipment per committed order and an empty outbox")
	}
	return nil
}

func bind(d outbox.Dialect, q string) string {
	if d != outbox.Postgres {
		return q
	}
	for n := 1; strings.Contains(q, "?"); n++ {
		q = strings.Replace(q, "?", fmt.Sprintf("$%d", n), 1)
	}
	return q
}
