// Command orders shows the transactional outbox and inbox end to end: an
// order service's HTTP endpoint (POST /orders) writes each order row and
// its OrderCreated message in one transaction, a relay running for the
// life of the program publishes the messages, and a shipping service
// consumes them through an inbox so that a redelivered message creates no
// second shipment. One order is rolled back and so never published. One
// trace and one correlation id run from each HTTP request to its shipment.
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
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	_ "github.com/msgkit/msgkit/adapters/all"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

const topic = "orders.events"

// OrderCreated is the event the order service publishes.
type OrderCreated struct {
	Order    string `json:"order"`
	Customer string `json:"customer"`
}

// placeOrder is the body of POST /orders.
type placeOrder struct {
	Order    string `json:"order"`
	Customer string `json:"customer"`
	Invalid  bool   `json:"invalid"` // fails validation after the INSERT: the transaction rolls back
}

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

	// Traces: an in-memory tracer stands in for the service's exporter.
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	obs, err := middleware.NewObservability(middleware.ObservabilityConfig{TracerProvider: tp})
	if err != nil {
		return err
	}
	var traces sync.Map // order id -> the trace id of its POST /orders

	// The shipping service: one shipment per order, however often the
	// OrderCreated message arrives.
	var shipped sync.WaitGroup
	shipped.Add(o.orders)
	duplicate := make(chan struct{}, 1)
	_, err = client.Subscribe(context.Background(), topic, "shipping", middleware.Chain(sdk.Handle(client, func(ctx context.Context, order OrderCreated, m *sdk.Message) error {
		if m.Get("run") != suffix {
			return nil // left over from an earlier run on the same broker
		}
		first := false
		err := inbox.Handler(func(ctx context.Context, tx *sql.Tx, m *sdk.Message) error {
			first = true
			_, err := tx.ExecContext(ctx, bind(dialect, `INSERT INTO `+shipmentsTable+` (order_id) VALUES (?)`), order.Order)
			return err
		})(ctx, m)
		if err != nil {
			return err
		}
		if first {
			posted, _ := traces.Load(order.Order)
			say("[shipping] %s received -> shipment created (same transaction as the inbox record); correlation %s, same trace as its POST /orders: %v",
				order.Order, m.CorrelationID, posted == trace.SpanContextFromContext(ctx).TraceID())
			shipped.Done()
		} else {
			say("[shipping] %s received again -> already in the inbox, nothing done", order.Order)
			select {
			case duplicate <- struct{}{}:
			default:
			}
		}
		return nil
	}), obs.Handler()))
	if err != nil {
		return err
	}

	// The relay runs for the life of the program and, stopped, finishes the
	// batch in flight.
	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: obs.Publisher(client), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()

	// The order service: POST /orders writes the order row and its
	// OrderCreated message in one transaction. The request starts the
	// conversation (its correlation id) and the trace the message carries.
	var firstMu sync.Mutex
	var first *sdk.Message
	tracer := tp.Tracer("orders-http")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var req placeOrder
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Order == "" {
			http.Error(w, "want {\"order\": ..., \"customer\": ...}", http.StatusBadRequest)
			return
		}
		ctx, span := tracer.Start(sdk.WithCorrelationID(r.Context(), "req-"+req.Order), "POST /orders", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		traces.Store(req.Order, span.SpanContext().TraceID())
		msg, err := client.Encode(OrderCreated{Order: req.Order, Customer: req.Customer})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		msg.EventType, msg.OrderingKey = "order.created", req.Customer
		msg.Set("run", suffix)
		err = store.InTx(ctx, func(tx *sql.Tx) error {
			// The order row and its message in one statement (on
			// PostgreSQL; a statement each elsewhere). store.Add(ctx, tx,
			// topic, msg) after the INSERT does the same with a statement
			// of its own.
			if _, err := store.ExecAndAdd(ctx, tx, bind(dialect, `INSERT INTO `+ordersTable+` (id, customer) VALUES (?, ?)`),
				[]any{req.Order, req.Customer}, topic, msg); err != nil {
				return err
			}
			if req.Invalid {
				return errors.New("the order failed validation")
			}
			return nil
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		firstMu.Lock()
		if first == nil {
			first = msg
		}
		firstMu.Unlock()
		w.WriteHeader(http.StatusCreated)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	for i := 1; i <= o.orders+1; i++ {
		id := fmt.Sprintf("order-%d", i)
		body, _ := json.Marshal(placeOrder{Order: id, Customer: "customer-7", Invalid: i == 3}) // order-3 fails validation
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ln.Addr().String()+"/orders", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusCreated:
			say("[orders]   POST /orders %s: 201, committed with its OrderCreated in the outbox", id)
		case http.StatusUnprocessableEntity:
			say("[orders]   POST /orders %s: 422, %s rolled back -> its OrderCreated is never published", id, id)
		default:
			return fmt.Errorf("POST /orders %s: %s", id, resp.Status)
		}
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
	firstMu.Lock()
	again := first
	firstMu.Unlock()
	if err := client.Publish(ctx, topic, again); err != nil {
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
