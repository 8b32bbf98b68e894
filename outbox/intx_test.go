package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

func sqliteStore(t *testing.T) (*sql.DB, *outbox.Store) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "app.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.SQLite})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, store
}

// InTx commits what fn wrote when it returns nil, and nothing when it
// returns an error or panics.
func TestInTxCommitsOrRollsBack(t *testing.T) {
	_, store := sqliteStore(t)
	ctx := context.Background()
	add := func(tx *sql.Tx) error { return store.Add(ctx, tx, "orders", sdk.NewMessage([]byte("x"))) }
	if err := store.InTx(ctx, add); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("validation failed")
	if err := store.InTx(ctx, func(tx *sql.Tx) error { _ = add(tx); return refused }); !errors.Is(err, refused) {
		t.Fatalf("fn's error should come back: %v", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = store.InTx(ctx, func(tx *sql.Tx) error { _ = add(tx); panic("bug") })
	}()
	lag, err := store.Lag(ctx)
	if err != nil || lag.Unsent != 1 {
		t.Fatalf("only the committed message should be in the outbox: %+v, %v", lag, err)
	}
}

// gate is a publisher that holds each publish until released, or until
// its context ends, as a broker client does.
type gate struct {
	started, release chan struct{}
}

func (g gate) Publish(ctx context.Context, _ string, _ ...*sdk.Message) error {
	g.started <- struct{}{}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A relay stopped in the middle of a batch finishes it: the messages it
// published are marked, not published again by the next relay.
func TestRelayStoppedMidBatchFinishesIt(t *testing.T) {
	_, store := sqliteStore(t)
	ctx := context.Background()
	if err := store.InTx(ctx, func(tx *sql.Tx) error {
		return store.Add(ctx, tx, "orders", sdk.NewMessage([]byte("x")))
	}); err != nil {
		t.Fatal(err)
	}
	g := gate{started: make(chan struct{}, 1), release: make(chan struct{})}
	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: g, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not start publishing within 10s")
	}
	stop()
	time.Sleep(50 * time.Millisecond) // the broker answers a little after the stop, within the drain time
	close(g.release)
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run should return its context's error, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context ending")
	}
	lag, err := store.Lag(ctx)
	if err != nil || lag.Unsent != 0 {
		t.Fatalf("the batch in flight at the stop should be marked sent: %+v, %v", lag, err)
	}
}
