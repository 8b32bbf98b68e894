package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// openSQLite opens a fresh SQLite database for an example; SQLite needs
// its pool limited to one connection (outbox.New checks).
func openSQLite() (db *sql.DB, done func()) {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT NOT NULL)`); err != nil {
		log.Fatal(err)
	}
	return db, func() { db.Close(); os.RemoveAll(dir) }
}

// An order row and its OrderCreated message are written in one transaction;
// the relay publishes the message because the transaction committed.
func Example() {
	ctx := context.Background()
	db, done := openSQLite()
	defer done()

	store, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)
	received := make(chan *sdk.Message, 1)
	if _, err := client.Subscribe(ctx, "orders.events", "billing", func(_ context.Context, m *sdk.Message) error {
		received <- m
		return nil
	}); err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer) VALUES (?, ?)`, "o-1", "customer-7"); err != nil {
		log.Fatal(err)
	}
	msg := sdk.NewMessage([]byte(`{"order":"o-1"}`))
	msg.EventType, msg.OrderingKey = "order.created", "customer-7"
	if err := store.Add(ctx, tx, "orders.events", msg); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: client})
	if err != nil {
		log.Fatal(err)
	}
	n, err := relay.RunOnce(ctx) // Run(ctx) keeps going until ctx ends
	if err != nil {
		log.Fatal(err)
	}
	m := <-received
	fmt.Println("published:", n)
	fmt.Println("received:", m.EventType, string(m.Payload))
	// Output:
	// published: 1
	// received: order.created {"order":"o-1"}
}

// ExecAndAdd writes the business row and the message with one statement on
// PostgreSQL; here, on SQLite, it runs the two one after the other, so the
// same code runs on every dialect.
func ExampleStore_ExecAndAdd() {
	ctx := context.Background()
	db, done := openSQLite()
	defer done()
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback()
	res, err := store.ExecAndAdd(ctx, tx, `INSERT INTO orders (id, customer) VALUES (?, ?)`, []any{"o-2", "customer-7"},
		"orders.events", sdk.NewMessage([]byte(`{"order":"o-2"}`)))
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	rows, _ := res.RowsAffected()
	lag, err := store.Lag(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("order rows:", rows)
	fmt.Println("messages waiting for the relay:", lag.Unsent)
	// Output:
	// order rows: 1
	// messages waiting for the relay: 1
}

// A redelivered message reaches the handler's body once: the inbox record
// and the handler's writes commit together.
func ExampleInbox_Handler() {
	ctx := context.Background()
	db, done := openSQLite()
	defer done()
	inbox, err := outbox.NewInbox(db, outbox.InboxConfig{Dialect: outbox.SQLite, Consumer: "shipping"})
	if err != nil {
		log.Fatal(err)
	}
	if err := inbox.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	handler := inbox.Handler(func(ctx context.Context, tx *sql.Tx, m *sdk.Message) error {
		fmt.Println("shipping", string(m.Payload))
		_, err := tx.ExecContext(ctx, `INSERT INTO orders (id, customer) VALUES (?, 'shipped')`, string(m.Payload))
		return err
	})

	msg := sdk.NewMessage([]byte("o-3"))
	for delivery := 1; delivery <= 2; delivery++ { // the broker delivers it twice
		if err := handler(ctx, msg); err != nil {
			log.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM orders`).Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows written:", n)
	// Output:
	// shipping o-3
	// rows written: 1
}

// sizeLimited refuses payloads over 8 bytes as a broker's driver does:
// with sdk.ErrPayloadTooLarge, before any network call.
type sizeLimited struct{ next outbox.Publisher }

func (p sizeLimited) Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error {
	for i, m := range msgs {
		if len(m.Payload) > 8 {
			return fmt.Errorf("publish to %q: message %d: %w: %d bytes, at most 8", topic, i, sdk.ErrPayloadTooLarge, len(m.Payload))
		}
	}
	return p.next.Publish(ctx, topic, msgs...)
}

// A message the broker refuses for good is set aside, with the reason,
// and the messages committed after it still go out.
func ExampleStore_SetAside() {
	ctx := context.Background()
	db, done := openSQLite()
	defer done()
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	client := sdk.NewClient(memory.New())
	defer client.Close(ctx)

	err = store.InTx(ctx, func(tx *sql.Tx) error {
		big := sdk.NewMessage([]byte("far too large"))
		big.ID = "m-1"
		small := sdk.NewMessage([]byte("fits"))
		small.ID = "m-2"
		return store.Add(ctx, tx, "reports", big, small)
	})
	if err != nil {
		log.Fatal(err)
	}
	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: sizeLimited{client}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	n, err := relay.RunOnce(ctx)
	fmt.Println("relayed or set aside:", n, err)
	lag, _ := store.Lag(ctx)
	fmt.Println("waiting:", lag.Unsent, "set aside:", lag.SetAside)
	aside, err := store.SetAside(ctx, 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range aside {
		fmt.Println("set aside:", m.ID, m.Topic, strings.Contains(m.Reason, "payload too large"))
	}
	// Output:
	// relayed or set aside: 2 <nil>
	// waiting: 0 set aside: 1
	// set aside: m-1 reports true
}
