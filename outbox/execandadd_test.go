package outbox_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// countRows counts the rows of table whose id starts with prefix.
func (e *env) countRows(table, prefix string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(bind(e.dialect, `SELECT COUNT(*) FROM `+table+` WHERE id LIKE ?`), prefix+"%").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestExecAndAddWritesBothOrNeither(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		got := e.consume("billing")
		relay := e.relay(outbox.RelayConfig{})
		ctx := context.Background()
		orders := e.table + "_orders"
		for _, commit := range []bool{false, true} {
			tx, err := e.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprint("exec-", commit)
			res, err := e.store.ExecAndAdd(ctx, tx, bind(e.dialect, `INSERT INTO `+orders+` (id, amount) VALUES (?, ?)`), []any{id, 7},
				"orders", sdk.NewMessage([]byte(id)), sdk.NewMessage([]byte(id+" too")))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("ExecAndAdd must return the business statement's result: rows affected %d, %v; want 1", n, err)
			}
			if commit {
				err = tx.Commit()
			} else {
				err = tx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := e.countRows(orders, "exec-"); n != 1 {
			t.Fatalf("business rows: %d, want only the committed one", n)
		}
		if n, err := relay.RunOnce(ctx); err != nil || n != 2 {
			t.Fatalf("the relay published %d (err %v), want the committed transaction's 2", n, err)
		}
		testenv.Eventually(t, 10*time.Second, "the 2 committed messages", func() bool { return got.distinct() == 2 })
	})
}

// An UPDATE's rows-affected count is the business statement's, not the
// outbox INSERT's, and a business statement with its own WITH clause keeps
// working.
func TestExecAndAddReturnsTheBusinessResult(t *testing.T) {
	eachDatabase(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		orders := e.table + "_orders"
		for _, id := range []string{"upd-1", "upd-2", "upd-3"} {
			if _, err := e.db.Exec(bind(e.dialect, `INSERT INTO `+orders+` (id, amount) VALUES (?, 1)`), id); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := e.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		update := "-- ship them\n/* all but one */ UPDATE " + orders + " SET amount = amount + 1 WHERE id <> ?"
		res, err := e.store.ExecAndAdd(ctx, tx, bind(e.dialect, update), []any{"upd-3"}, "orders", sdk.NewMessage(nil))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 2 {
			t.Fatalf("rows affected: %d, want the UPDATE's 2", n)
		}
		if e.dialect == outbox.Postgres {
			with := `WITH picked AS (SELECT id FROM ` + orders + ` WHERE id = $1) DELETE FROM ` + orders + ` WHERE id IN (SELECT id FROM picked)`
			res, err := e.store.ExecAndAdd(ctx, tx, with, []any{"upd-1"}, "orders", sdk.NewMessage(nil))
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("a business statement with its own WITH: rows affected %d, want 1", n)
			}
		}
		var unsent int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM ` + e.table).Scan(&unsent); err != nil {
			t.Fatal(err)
		}
		want := 1
		if e.dialect == outbox.Postgres {
			want = 2
		}
		if unsent != want {
			t.Fatalf("outbox rows in the transaction: %d, want %d", unsent, want)
		}
	})
}

// More messages than one INSERT takes: the first thousand share the
// business statement, the rest follow in the same transaction.
func TestExecAndAddManyMessages(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*sdk.Message, 2500)
	for i := range msgs {
		msgs[i] = keyed("k", i)
	}
	if _, err := e.store.ExecAndAdd(ctx, tx, `INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, $2)`, []any{"many", 1}, "orders", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got := e.consume("billing")
	relay := e.relay(outbox.RelayConfig{BatchSize: 1000})
	for published := 0; published < len(msgs); {
		n, err := relay.RunOnce(ctx)
		if err != nil || n == 0 {
			t.Fatalf("after %d published the relay published %d (err %v)", published, n, err)
		}
		published += n
	}
	testenv.Eventually(t, 20*time.Second, "all 2500 messages", func() bool { return got.distinct() == len(msgs) })
	got.checkOrder(t)
}

func TestExecAndAddInPgxTransaction(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	pool, err := pgxpool.New(context.Background(), testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // before pool.Close, which waits for the connection
	res, err := e.store.ExecAndAdd(ctx, outbox.Pgx(tx), `INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, $2)`, []any{"pgx", 1}, "orders", sdk.NewMessage([]byte("pgx")))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d, want 1", n)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if lag, err := e.store.Lag(ctx); err != nil || lag.Unsent != 1 {
		t.Fatalf("unsent after the pgx commit: %+v, %v; want 1", lag, err)
	}
}

func TestExecAndAddErrorsSayWhatToDo(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	_, err = e.store.ExecAndAdd(ctx, tx, `CREATE TABLE x (id INT)`, nil, "orders", sdk.NewMessage(nil))
	if err == nil || !strings.Contains(err.Error(), "INSERT, UPDATE, DELETE or SELECT") || !strings.Contains(err.Error(), `"CREATE"`) {
		t.Fatalf("a statement that cannot follow WITH: got %v, want an error naming CREATE and what is allowed", err)
	}
	_, err = e.store.ExecAndAdd(ctx, tx, `INSERT INTO `+e.table+`_orders (id, amount) VALUES ($1, $2)`, []any{"one arg short"}, "orders", sdk.NewMessage(nil))
	if err == nil || !strings.Contains(err.Error(), "placeholders $1 to $1") {
		t.Fatalf("a statement whose placeholders do not match its args: got %v, want the placeholder hint", err)
	}
	if _, err := e.store.ExecAndAdd(ctx, nil, `SELECT 1`, nil, "orders"); err == nil {
		t.Fatal("a nil tx must fail")
	}
}
