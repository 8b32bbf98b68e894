package outbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/msgkit/msgkit/sdk"
)

// Pgx adapts a pgx transaction for Store.Add and Inbox.Claim, for services
// that use pgx directly instead of database/sql:
//
//	tx, _ := pool.Begin(ctx)
//	store.Add(ctx, outbox.Pgx(tx), "orders", msg)
func Pgx(tx pgx.Tx) Execer { return pgxExecer{tx} }

type pgxExecer struct{ tx pgx.Tx }

func (p pgxExecer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tag, err := p.tx.Exec(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return commandTag(tag), nil
}

type commandTag pgconn.CommandTag

func (c commandTag) LastInsertId() (int64, error) { return 0, nil }
func (c commandTag) RowsAffected() (int64, error) { return pgconn.CommandTag(c).RowsAffected(), nil }

// QueueAdd queues the outbox INSERT for msgs on batch, a pgx.Batch the
// caller sends inside its own transaction together with its business
// statements. The outbox write then shares their round trip instead of
// adding one; the messages are published if and only if that transaction
// commits. Only for a PostgreSQL store. ctx gives the messages their
// conversation and trace, as for Add.
func (s *Store) QueueAdd(ctx context.Context, batch *pgx.Batch, topic string, msgs ...*sdk.Message) error {
	if s.dialect != Postgres {
		return fmt.Errorf("outbox: QueueAdd needs a postgres store, this one is %s", s.dialect)
	}
	if batch == nil {
		return fmt.Errorf("outbox: QueueAdd: batch is nil")
	}
	stmts, err := s.inserts(ctx, topic, msgs)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		batch.Queue(st.query, st.args...)
	}
	return nil
}

// PgxBeginner starts pgx transactions: *pgxpool.Pool, *pgx.Conn and pgx.Tx
// (a savepoint) are ones.
type PgxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InPgxTx runs fn in a pgx transaction of db and commits it when fn
// returns nil; it rolls back when fn returns an error or panics. Add the
// messages inside with Add(ctx, Pgx(tx), ...), ExecAndAdd or QueueAdd.
func InPgxTx(ctx context.Context, db PgxBeginner, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, db, fn); err != nil {
		return fmt.Errorf("outbox: pgx transaction: %w", err)
	}
	return nil
}
