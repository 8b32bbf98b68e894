package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Dialect names the SQL database the tables live in.
type Dialect string

// Supported dialects.
const (
	Postgres Dialect = "postgres" // PostgreSQL 12+ (pgx or lib/pq driver; LISTEN/NOTIFY needs pgx)
	MySQL    Dialect = "mysql"    // MariaDB 10.6+ or MySQL 8.0+ (SKIP LOCKED)
	SQLite   Dialect = "sqlite"   // SQLite 3.35+ (RETURNING), e.g. modernc.org/sqlite
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func checkDialect(d Dialect) error {
	switch d {
	case Postgres, MySQL, SQLite:
		return nil
	case "":
		return fmt.Errorf("outbox: Config.Dialect is empty; set outbox.Postgres, outbox.MySQL or outbox.SQLite")
	}
	return fmt.Errorf("outbox: unknown dialect %q; want postgres, mysql or sqlite", d)
}

// maxIdentifier is the longest name PostgreSQL keeps (it cuts longer ones
// without an error, so that two names made from one table could become
// one) and MySQL takes.
const maxIdentifier = 63

// The longest suffixes the schema adds to a table name, for the names of
// the tables and indexes made from it.
const (
	outboxSuffix = "_published_sent"
	inboxSuffix  = "_processed"
)

// checkTable refuses a table name that is not a plain identifier, or one
// too long for the names made from it with suffix to stay whole.
func checkTable(field, name, suffix string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("outbox: %s %q is not a plain SQL identifier (letters, digits and _, not starting with a digit, at most 63)", field, name)
	}
	if max := maxIdentifier - len(suffix); len(name) > max {
		return fmt.Errorf("outbox: %s %q is %d characters; at most %d, so that the names made from it (%s%s) stay within the %d characters PostgreSQL and MySQL keep",
			field, name, len(name), max, name, suffix, maxIdentifier)
	}
	return nil
}

// bind rewrites ? placeholders to $1, $2... for PostgreSQL.
func (d Dialect) bind(q string) string { return d.bindFrom(q, 0) }

// bindFrom is bind with the numbering starting after skip.
func (d Dialect) bindFrom(q string, skip int) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	n := skip
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

// outboxDDL returns the statements that create the outbox table. Times are
// Unix milliseconds, the same in every dialect; an empty ordering_key means none;
// lease_until_ms 0 means unclaimed; sent_ms NULL means not yet published
// (on PostgreSQL published rows leave the table: deleted, or moved to
// <table>_published with a Retention).
func (d Dialect) outboxDDL(t string) []string {
	switch d {
	case Postgres:
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t + ` (
  seq            BIGSERIAL PRIMARY KEY,
  id             TEXT NOT NULL,
  topic          TEXT NOT NULL,
  ordering_key   TEXT NOT NULL DEFAULT '',
  payload        BYTEA NOT NULL,
  metadata       TEXT NOT NULL,
  created_ms     BIGINT NOT NULL,
  claimed_by     TEXT NOT NULL DEFAULT '',
  lease_until_ms BIGINT NOT NULL DEFAULT 0,
  attempts       INT NOT NULL DEFAULT 0,
  sent_ms        BIGINT
)`,
			// Published rows kept for a Retention move here, so the outbox
			// holds only what waits: the relay finds it by primary key, and
			// no other index costs every Add an entry.
			`CREATE TABLE IF NOT EXISTS ` + t + `_published (
  seq          BIGINT PRIMARY KEY,
  id           TEXT NOT NULL,
  topic        TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  payload      BYTEA NOT NULL,
  metadata     TEXT NOT NULL,
  created_ms   BIGINT NOT NULL,
  sent_ms      BIGINT NOT NULL
)`,
			`CREATE INDEX IF NOT EXISTS ` + t + `_published_sent ON ` + t + `_published (sent_ms)`,
			// Messages the publisher refuses for good, set aside so that the
			// rest go out (Relay, Store.SetAside).
			`CREATE TABLE IF NOT EXISTS ` + t + `_failed (
  seq          BIGINT PRIMARY KEY,
  id           TEXT NOT NULL,
  topic        TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  payload      BYTEA NOT NULL,
  metadata     TEXT NOT NULL,
  created_ms   BIGINT NOT NULL,
  failed_ms    BIGINT NOT NULL,
  reason       TEXT NOT NULL
)`,
			// Tables made before 2026-11-25 kept published rows in the
			// outbox (sent_ms set) and had partial indexes for unsent rows,
			// sent rows and ordering keys, and an insert trigger that sent
			// the NOTIFY the INSERT now sends itself (Store.insertSQL).
			// Together they cost every Add 3-5% of a one-INSERT business
			// transaction. These move the published rows and remove the rest.
			`WITH moved AS (DELETE FROM ` + t + ` WHERE sent_ms IS NOT NULL RETURNING seq, id, topic, ordering_key, payload, metadata, created_ms, sent_ms)
INSERT INTO ` + t + `_published SELECT * FROM moved ON CONFLICT (seq) DO NOTHING`,
			`DROP INDEX IF EXISTS ` + t + `_unsent`,
			`DROP INDEX IF EXISTS ` + t + `_sent`,
			`DROP INDEX IF EXISTS ` + t + `_unsent_key`,
			`DROP TRIGGER IF EXISTS ` + t + `_notify ON ` + t,
			`DROP FUNCTION IF EXISTS ` + t + `_notify()`,
		}
	case MySQL:
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t + ` (
  seq            BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id             VARCHAR(255) NOT NULL,
  topic          VARCHAR(255) NOT NULL,
  ordering_key   VARCHAR(255) NOT NULL DEFAULT '',
  payload        LONGBLOB NOT NULL,
  metadata       LONGTEXT NOT NULL,
  created_ms     BIGINT NOT NULL,
  claimed_by     VARCHAR(255) NOT NULL DEFAULT '',
  lease_until_ms BIGINT NOT NULL DEFAULT 0,
  attempts       INT NOT NULL DEFAULT 0,
  sent_ms        BIGINT NULL,
  INDEX ` + t + `_unsent (sent_ms, seq),
  INDEX ` + t + `_unsent_key (ordering_key, sent_ms, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
			`CREATE TABLE IF NOT EXISTS ` + t + `_failed (
  seq          BIGINT NOT NULL PRIMARY KEY,
  id           VARCHAR(255) NOT NULL,
  topic        VARCHAR(255) NOT NULL,
  ordering_key VARCHAR(255) NOT NULL,
  payload      LONGBLOB NOT NULL,
  metadata     LONGTEXT NOT NULL,
  created_ms   BIGINT NOT NULL,
  failed_ms    BIGINT NOT NULL,
  reason       TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		}
	default: // SQLite
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t + ` (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL,
  topic          TEXT NOT NULL,
  ordering_key   TEXT NOT NULL DEFAULT '',
  payload        BLOB NOT NULL,
  metadata       TEXT NOT NULL,
  created_ms     INTEGER NOT NULL,
  claimed_by     TEXT NOT NULL DEFAULT '',
  lease_until_ms INTEGER NOT NULL DEFAULT 0,
  attempts       INTEGER NOT NULL DEFAULT 0,
  sent_ms        INTEGER
)`,
			`CREATE INDEX IF NOT EXISTS ` + t + `_unsent ON ` + t + ` (seq) WHERE sent_ms IS NULL`,
			`CREATE INDEX IF NOT EXISTS ` + t + `_unsent_key ON ` + t + ` (ordering_key, seq) WHERE sent_ms IS NULL AND ordering_key <> ''`,
			`CREATE INDEX IF NOT EXISTS ` + t + `_sent ON ` + t + ` (sent_ms) WHERE sent_ms IS NOT NULL`,
			`CREATE TABLE IF NOT EXISTS ` + t + `_failed (
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL,
  topic        TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  payload      BLOB NOT NULL,
  metadata     TEXT NOT NULL,
  created_ms   INTEGER NOT NULL,
  failed_ms    INTEGER NOT NULL,
  reason       TEXT NOT NULL
)`,
		}
	}
}

// inboxDDL returns the statements that create the inbox table.
func (d Dialect) inboxDDL(t string) []string {
	switch d {
	case MySQL:
		return []string{`CREATE TABLE IF NOT EXISTS ` + t + ` (
  consumer     VARCHAR(255) NOT NULL,
  message_id   VARCHAR(255) NOT NULL,
  processed_ms BIGINT NOT NULL,
  PRIMARY KEY (consumer, message_id),
  INDEX ` + t + `_processed (processed_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`}
	default:
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + t + ` (
  consumer     TEXT NOT NULL,
  message_id   TEXT NOT NULL,
  processed_ms BIGINT NOT NULL,
  PRIMARY KEY (consumer, message_id)
)`,
			`CREATE INDEX IF NOT EXISTS ` + t + `_processed ON ` + t + ` (processed_ms)`,
		}
	}
}

// insertIgnore records (consumer, message_id) unless it is there already;
// one affected row means this is the first time.
func (d Dialect) insertIgnore(t string) string {
	switch d {
	case Postgres:
		return `INSERT INTO ` + t + ` (consumer, message_id, processed_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	case MySQL:
		return `INSERT IGNORE INTO ` + t + ` (consumer, message_id, processed_ms) VALUES (?, ?, ?)`
	default:
		return `INSERT OR IGNORE INTO ` + t + ` (consumer, message_id, processed_ms) VALUES (?, ?, ?)`
	}
}

// eligible is the WHERE clause of a leasing claim (MySQL, SQLite): unsent,
// not leased, and no earlier unsent message with the same ordering key
// leased by another relay. Claims run one at a time (a named lock, or
// SQLite's single writer), so the leases it reads are settled; a batch may
// then hold several messages of one key, in order.
func eligible(t string) string {
	return `o.sent_ms IS NULL AND o.lease_until_ms < ? AND (o.ordering_key = '' OR NOT EXISTS (
    SELECT 1 FROM ` + t + ` p WHERE p.ordering_key = o.ordering_key AND p.sent_ms IS NULL AND p.seq < o.seq AND p.lease_until_ms >= ?))`
}

const rowColumns = `seq, id, topic, ordering_key, payload, metadata, created_ms`

// pgLockPrelude starts a PostgreSQL batch transaction (argument: the lease
// in milliseconds). The lease is the server's idle-in-transaction timeout:
// the relay's session is idle while it publishes, so a relay that hangs or
// loses its connection for longer than the lease has its session ended
// and its row locks freed, and another relay takes the batch. JIT is off
// because the claim's cost estimate with a backlog passes jit_above_cost,
// and PostgreSQL then compiled the query on every claim (241 ms instead of
// 5 ms with 50,000 rows waiting, on PostgreSQL 15 here).
const pgLockPrelude = `SELECT set_config('idle_in_transaction_session_timeout', $1, true), set_config('jit', 'off', true)`

// pgLockSQL locks the next batch for the transaction (argument: limit) and
// returns the rows it may publish, in seq order.
//
// batch is the first rows nobody holds, skipping locked ones. A keyed row
// of it may go out only if every earlier unsent row of its key is in the
// batch too: one outside it is held by another relay, which publishes it
// first. Every unsent row before the batch's last keyed row that is not in
// it is such a row (the batch took all the others), so blocked reads just
// those, by primary key, and keeps the first per key (a batch without
// keys reads none). Rows of a key after it stay locked by this transaction
// but unpublished, and come back when it ends. The check costs what the
// other relays hold, with any backlog, and needs no index on the ordering
// key, which would cost every Add.
func pgLockSQL(t string) string {
	return `WITH batch AS MATERIALIZED (
  SELECT ` + rowColumns + ` FROM ` + t + ` WHERE sent_ms IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
), blocked AS (
  SELECT p.ordering_key, min(p.seq) AS seq FROM ` + t + ` p
  WHERE p.sent_ms IS NULL AND p.seq < (SELECT max(seq) FROM batch WHERE ordering_key <> '') AND p.ordering_key <> ''
    AND p.seq NOT IN (SELECT seq FROM batch)
  GROUP BY p.ordering_key
)
SELECT ` + rowColumns + ` FROM batch b
WHERE NOT EXISTS (SELECT 1 FROM blocked x WHERE x.ordering_key = b.ordering_key AND x.seq < b.seq)`
}

// lockedBatch is a PostgreSQL batch: rows locked by an open transaction.
type lockedBatch struct {
	conn *sql.Conn
	tx   *sql.Tx
	rows []row
}

// close ends the batch: it rolls the transaction back unless it has
// ended, and returns the connection to the pool. It may be called again.
func (b *lockedBatch) close() {
	_ = b.tx.Rollback()
	_ = b.conn.Close()
}

// lockBatch opens the transaction of a PostgreSQL batch and locks up to
// limit rows in it; the caller publishes them, ends it with commitSent and
// then closes it. The connection is taken with ctx, so a relay told to
// stop does not wait for a busy pool; the transaction does not end with
// ctx, so a relay told to stop right after publishing still deletes what it
// published. lease bounds how long it may stay open between statements.
func (s *Store) lockBatch(ctx context.Context, lease time.Duration, limit int) (*lockedBatch, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	b := &lockedBatch{conn: conn, tx: tx}
	ms := strconv.FormatInt(max(1, lease.Milliseconds()), 10) // 0 would turn the timeout off
	if _, err := tx.ExecContext(ctx, pgLockPrelude, ms); err != nil {
		b.close()
		return nil, err
	}
	if b.rows, err = queryRows(ctx, tx, pgLockSQL(s.table), limit); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// commitSent marks the published rows of a PostgreSQL batch (deleted, or
// kept when keep) and commits; the rest are unlocked for a later round.
func (s *Store) commitSent(ctx context.Context, b *lockedBatch, sent []row, keep bool) error {
	if len(sent) == 0 {
		return b.tx.Rollback()
	}
	q, args := s.markSQL(sent, keep)
	if _, err := b.tx.ExecContext(ctx, Postgres.bind(q), args...); err != nil {
		_ = b.tx.Rollback() // the rows' locks go now, not at close
		return err
	}
	return b.tx.Commit()
}

// claim leases up to limit eligible rows to relay until leaseUntil and
// returns them in seq order (MySQL, SQLite; PostgreSQL uses lockBatch).
func (s *Store) claim(ctx context.Context, relay string, now, leaseUntil int64, limit int) ([]row, error) {
	t := s.table
	switch s.dialect {
	case SQLite:
		var rows []row
		err := s.sqliteWrite(ctx, func(conn *sql.Conn) (err error) {
			rows, err = queryRows(ctx, conn, `UPDATE `+t+` SET claimed_by = ?, lease_until_ms = ?, attempts = attempts + 1
WHERE seq IN (SELECT o.seq FROM `+t+` o WHERE `+eligible(t)+` ORDER BY o.seq LIMIT ?)
RETURNING `+rowColumns, relay, leaseUntil, now, now, limit)
			return err
		})
		return rows, err
	default: // MySQL: no UPDATE ... RETURNING; a named lock serialises claims
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 10)`, t).Scan(&got); err != nil {
			return nil, err
		}
		if got.Int64 != 1 {
			return nil, fmt.Errorf("could not take the claim lock %q within 10s", t)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(?)`, t)
		// FOR UPDATE without SKIP LOCKED: InnoDB may run another relay's
		// DELETE ... WHERE seq IN (...) as a range scan and lock rows it does
		// not delete. Skipping those (unleased) rows would let a later message
		// of their ordering key be claimed before them. Claims are already
		// serialised by the named lock, so waiting only ever waits for a short
		// mark statement. READ COMMITTED keeps the claim from taking gap locks
		// of its own.
		tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		rows, err := queryRows(ctx, tx, `SELECT `+rowColumns+` FROM `+t+` o WHERE `+eligible(t)+` ORDER BY o.seq LIMIT ? FOR UPDATE`, now, now, limit)
		if err != nil || len(rows) == 0 {
			return nil, err
		}
		q, args := s.seqIn(`UPDATE `+t+` SET claimed_by = ?, lease_until_ms = ?, attempts = attempts + 1 WHERE seq`, rows, relay, leaseUntil)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return nil, err
		}
		return rows, tx.Commit()
	}
}

// checkSQLitePool refuses a SQLite pool of more than one connection. SQLite
// has one writer at a time, and a connection waiting for the lock retries
// by sleeping (up to 100ms at a time): while a relay drains a backlog, its
// back-to-back writes starve the application's transactions until they
// fail with SQLITE_BUSY. With one connection, database/sql queues every
// writer and hands the connection to a random waiter, so they take turns.
func checkSQLitePool(db *sql.DB, what string) error {
	if n := db.Stats().MaxOpenConnections; n != 1 {
		limit := "unlimited"
		if n > 0 {
			limit = fmt.Sprint(n)
		}
		return fmt.Errorf("outbox: %s on SQLite needs a *sql.DB limited to one connection (db.SetMaxOpenConns(1)), this one allows %s: "+
			"SQLite has one writer at a time, and with several connections the relay's writes starve the application's transactions into SQLITE_BUSY errors under load", what, limit)
	}
	return nil
}

// sqliteWrite runs f in a BEGIN IMMEDIATE transaction on one connection.
// A plain write statement in WAL mode starts as a reader and can fail at
// once with SQLITE_BUSY when another connection commits first (busy_timeout
// does not apply to that case); taking the write lock up front makes it
// wait its turn instead.
func (s *Store) sqliteWrite(ctx context.Context, f func(*sql.Conn) error) error {
	s.sqliteMu.Lock()
	defer s.sqliteMu.Unlock()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	if err := f(conn); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		return err
	}
	_, err = conn.ExecContext(ctx, `COMMIT`)
	return err
}

// exec runs one write statement; on SQLite inside sqliteWrite.
func (s *Store) exec(ctx context.Context, q string, args ...any) error {
	if s.dialect != SQLite {
		_, err := s.db.ExecContext(ctx, s.dialect.bind(q), args...)
		return err
	}
	return s.sqliteWrite(ctx, func(conn *sql.Conn) error {
		_, err := conn.ExecContext(ctx, q, args...)
		return err
	})
}

// seqIn appends to prefix (which ends with a column) a match of the rows'
// seqs, with args then the seqs' parameters. On PostgreSQL that is one array
// parameter, "= ANY(?::bigint[])", in text form so that any database/sql
// driver can send it: a statement with 500 parameters took longer to send,
// parse and plan than the delete took to run. Elsewhere it is "IN (?, ...)".
func (s *Store) seqIn(prefix string, rows []row, args ...any) (string, []any) {
	if s.dialect == Postgres {
		var list strings.Builder
		list.WriteByte('{')
		for i, r := range rows {
			if i > 0 {
				list.WriteByte(',')
			}
			list.WriteString(strconv.FormatInt(r.seq, 10))
		}
		list.WriteByte('}')
		return prefix + " = ANY(?::bigint[])", append(args, list.String())
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(" IN (")
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
		args = append(args, r.seq)
	}
	b.WriteString(")")
	return b.String(), args
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRows returns the rows in seq order (UPDATE ... RETURNING has none).
func queryRows(ctx context.Context, q queryer, query string, args ...any) ([]row, error) {
	rs, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		if err := rs.Scan(&r.seq, &r.id, &r.topic, &r.orderingKey, &r.payload, &r.metadata, &r.createdMs); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out, rs.Err()
}
