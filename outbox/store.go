// Package outbox is the transactional outbox and inbox.
//
// A service writes its business rows and the messages they cause in one SQL
// transaction (Store.Add takes the caller's transaction). A Relay claims
// unsent messages in batches (on PostgreSQL with row locks held by the
// claiming transaction, elsewhere under a lease), publishes them through any
// publisher (an *sdk.Client, usually), and marks them sent: a message is
// published if and only if its transaction committed, at least once, in
// order per ordering key. On the consuming side an Inbox records each
// (consumer, message id) in the handler's own transaction, which turns
// at-least-once delivery into an effect that happens once.
//
// PostgreSQL, MySQL/MariaDB and SQLite are supported. Tables are created by
// Migrate, never on import; the SQL is in docs/outbox.md.
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/msgkit/msgkit/sdk"
)

// Config names the dialect and the tables.
type Config struct {
	// Dialect is Postgres, MySQL or SQLite. Required.
	Dialect Dialect
	// Table is the outbox table: a plain identifier of at most 48
	// characters, so that the names made from it (<Table>_published_sent)
	// stay whole. Default "msgkit_outbox".
	Table string
}

// Execer is what Add needs of a transaction: *sql.Tx satisfies it, and
// Pgx wraps a pgx.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Store writes messages to the outbox table and reads its state.
type Store struct {
	db      *sql.DB
	dialect Dialect
	table   string
	now     func() time.Time
	// sqliteMu queues this Store's own writes on SQLite. SQLite has one
	// writer at a time, and its busy handler retries by sleeping, which is
	// unfair under contention: relays of one process racing each other could
	// starve a mark past its lease (and so publish twice).
	sqliteMu sync.Mutex
	// insertSQLs holds the INSERT statements of a few rows, by rows and
	// placeholder offset (insertSQL).
	insertSQLs sync.Map
}

// New returns a Store on db. It does not touch the database; call Migrate
// once (at deploy or start-up) to create the table.
func New(db *sql.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("outbox: New: db is nil")
	}
	if err := checkDialect(cfg.Dialect); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = "msgkit_outbox"
	}
	if err := checkTable("Config.Table", cfg.Table, outboxSuffix); err != nil {
		return nil, err
	}
	if cfg.Dialect == SQLite {
		if err := checkSQLitePool(db, "New"); err != nil {
			return nil, err
		}
	}
	return &Store{db: db, dialect: cfg.Dialect, table: cfg.Table, now: time.Now}, nil
}

// Migrate creates the outbox table and its indexes. It is idempotent. On
// PostgreSQL it also drops an ordering-key index and a NOTIFY trigger on
// the table where they exist: the relay does not read such an index, and
// Add notifies relays itself, so a trigger would notify them twice.
func (s *Store) Migrate(ctx context.Context) error {
	for _, stmt := range s.dialect.outboxDDL(s.table) {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: migrate %s table %q: %w", s.dialect, s.table, err)
		}
	}
	return nil
}

// channel is the PostgreSQL NOTIFY channel of the table: its name as
// PostgreSQL folds an unquoted identifier, which is how LISTEN names it.
func (s *Store) channel() string { return strings.ToLower(s.table) }

// row is one outbox row.
type row struct {
	seq         int64
	id          string
	topic       string
	orderingKey string
	payload     []byte
	metadata    string
	createdMs   int64
}

// maxRowsPerInsert keeps one INSERT under every driver's placeholder limit.
const maxRowsPerInsert = 1000

// Add writes msgs for topic in tx, the caller's transaction: they will be
// published if and only if tx commits. Messages without an ID get one (and
// the ID is set on the message), without a Time get the current time. Like
// Publish, Add takes the conversation from ctx (the message being handled,
// or sdk.WithCorrelationID) and the trace: the span in ctx is written into
// each message's traceparent and tracestate, so the consumer's span joins
// the trace that wrote the message, not the relay's.
func (s *Store) Add(ctx context.Context, tx Execer, topic string, msgs ...*sdk.Message) error {
	if tx == nil {
		return fmt.Errorf("outbox: Add: tx is nil; pass the transaction that writes the business rows")
	}
	stmts, err := s.inserts(ctx, topic, msgs)
	if err != nil {
		return err
	}
	return s.execInserts(ctx, tx, topic, stmts)
}

// execInserts runs the INSERT statements built by inserts.
func (s *Store) execInserts(ctx context.Context, tx Execer, topic string, stmts []statement) error {
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st.query, st.args...); err != nil {
			return fmt.Errorf("outbox: add %d message(s) for %s to %s: %w", st.rows, sdk.QuoteName(topic), s.table, err)
		}
	}
	return nil
}

// ExecAndAdd runs query, the caller's business statement, with args in tx
// and writes msgs for topic in the same transaction, like Add. It returns
// the business statement's result.
//
// On PostgreSQL the two are one statement: the outbox INSERT goes into a
// WITH clause in front of query (PostgreSQL runs a data-modifying WITH
// whether or not the statement reads it). A separate Add is a statement of
// its own, and on a fast database a statement is a large share of a small
// transaction (docs/outbox.md, "Numbers"). query must then be a single
// INSERT, UPDATE, DELETE or SELECT (it may start with its own WITH) whose
// placeholders are $1 to $len(args). MySQL and SQLite cannot put an INSERT
// in a WITH clause; there ExecAndAdd runs query and then Add.
func (s *Store) ExecAndAdd(ctx context.Context, tx Execer, query string, args []any, topic string, msgs ...*sdk.Message) (sql.Result, error) {
	if tx == nil {
		return nil, fmt.Errorf("outbox: ExecAndAdd: tx is nil; pass the transaction that writes the business rows")
	}
	if s.dialect != Postgres || len(msgs) == 0 {
		stmts, err := s.inserts(ctx, topic, msgs) // bad input fails before anything runs
		if err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("outbox: ExecAndAdd: the business statement failed: %w", err)
		}
		return res, s.execInserts(ctx, tx, topic, stmts)
	}
	withs, main, err := splitWith(query)
	if err != nil {
		return nil, err
	}
	n := min(len(msgs), maxRowsPerInsert)
	head, err := s.insertsFrom(ctx, topic, msgs[:n], len(args))
	if err != nil {
		return nil, err
	}
	rest, err := s.inserts(ctx, topic, msgs[n:])
	if err != nil {
		return nil, err
	}
	combined := withs + outboxCTE + " AS (" + head[0].query + ")" + main
	res, err := tx.ExecContext(ctx, combined, append(args[:len(args):len(args)], head[0].args...)...)
	if err != nil {
		return nil, fmt.Errorf("outbox: ExecAndAdd: the business statement with the outbox INSERT for %q in front of it failed "+
			"(the statement must be one INSERT, UPDATE, DELETE or SELECT with placeholders $1 to $%d): %w", topic, len(args), err)
	}
	return res, s.execInserts(ctx, tx, topic, rest)
}

// outboxCTE names the outbox INSERT in the WITH clause ExecAndAdd builds.
const outboxCTE = "msgkit_outbox_insert"

// splitWith prepares query for a WITH clause in front of it: withs is
// "WITH " or "WITH RECURSIVE " and main what follows the outbox's common
// table expression: " " and the statement, or, when the query has a WITH
// of its own, ", " and its common table expressions and statement.
// Leading comments and blanks are dropped.
func splitWith(query string) (withs, main string, err error) {
	q := skipSQLSpace(query)
	word := q
	if i := strings.IndexFunc(q, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }); i >= 0 {
		word = q[:i]
	}
	switch strings.ToUpper(word) {
	case "INSERT", "UPDATE", "DELETE", "SELECT":
		return "WITH ", " " + q, nil
	case "WITH":
		rest := skipSQLSpace(q[len(word):])
		if len(rest) > 9 && strings.EqualFold(rest[:9], "RECURSIVE") && !isWordRune(rune(rest[9])) {
			return "WITH RECURSIVE ", ", " + skipSQLSpace(rest[9:]), nil
		}
		return "WITH ", ", " + rest, nil
	}
	return "", "", fmt.Errorf("outbox: ExecAndAdd: the business statement must be one INSERT, UPDATE, DELETE or SELECT "+
		"(the outbox INSERT goes into a WITH clause in front of it), not one starting with %q; run it with tx.ExecContext and call Add", word)
}

func isWordRune(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}

// skipSQLSpace drops leading white space and comments.
func skipSQLSpace(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n")
		switch {
		case strings.HasPrefix(q, "--"):
			if i := strings.IndexByte(q, '\n'); i >= 0 {
				q = q[i+1:]
			} else {
				return ""
			}
		case strings.HasPrefix(q, "/*"):
			if i := strings.Index(q, "*/"); i >= 0 {
				q = q[i+2:]
			} else {
				return ""
			}
		default:
			return q
		}
	}
}

type statement struct {
	query string
	args  []any
	rows  int
}

// inserts builds the INSERT statements for msgs, at most maxRowsPerInsert
// rows each.
func (s *Store) inserts(ctx context.Context, topic string, msgs []*sdk.Message) ([]statement, error) {
	return s.insertsFrom(ctx, topic, msgs, 0)
}

// insertsFrom is inserts with PostgreSQL placeholders numbered after the
// first skip (those of a business statement sharing the statement).
func (s *Store) insertsFrom(ctx context.Context, topic string, msgs []*sdk.Message, skip int) ([]statement, error) {
	if topic == "" {
		return nil, fmt.Errorf("outbox: Add: topic is empty")
	}
	if why := s.dialect.notStorable(topic); why != "" {
		return nil, fmt.Errorf("outbox: Add to %s: the topic %s", sdk.QuoteName(topic), why)
	}
	now := s.now()
	created := now.UnixMilli()
	var stmts []statement
	for start := 0; start < len(msgs); start += maxRowsPerInsert {
		chunk := msgs[start:min(start+maxRowsPerInsert, len(msgs))]
		args := make([]any, 0, 6*len(chunk))
		for i, m := range chunk {
			if m == nil {
				return nil, fmt.Errorf("outbox: Add: message %d is nil", start+i)
			}
			if err := sdk.CheckTime(m.Time); err != nil {
				return nil, fmt.Errorf("outbox: Add message %d (id %s): %w", start+i, sdk.QuoteName(m.ID), err)
			}
			// The message's parts as a publisher writes them, without a
			// Watermill message (two channels and a map) to take apart.
			// With metadataJSON this took Add's Go work from 2.8 µs and 39
			// allocations to 1.2 µs and 17.
			capture(ctx, m)
			o := sdk.NewOutgoing(m, now)
			if m.ID == "" {
				m.ID = o.ID()
			}
			for _, f := range [...]struct{ name, value string }{{"id", o.ID()}, {"ordering key", o.OrderingKey()}} {
				if why := s.dialect.notStorable(f.value); why != "" {
					return nil, fmt.Errorf("outbox: Add message %d: its %s %s %s", start+i, f.name, sdk.QuoteName(f.value), why)
				}
			}
			var bad error
			o.Metadata(func(k, v string) bool { bad = sdk.CheckMetadata(k, v); return bad == nil })
			if bad != nil {
				return nil, fmt.Errorf("outbox: Add message %d (id %s): %w", start+i, o.ID(), bad)
			}
			payload := o.Payload()
			if payload == nil {
				payload = []byte{}
			}
			args = append(args, o.ID(), topic, o.OrderingKey(), payload, metadataJSON(o), created)
		}
		stmts = append(stmts, statement{query: s.insertSQL(len(chunk), skip), args: args, rows: len(chunk)})
	}
	return stmts, nil
}

// insertSQL is the INSERT of rows messages, its placeholders numbered
// after skip. Statements of a few rows, which most Adds are, are built once.
func (s *Store) insertSQL(rows, skip int) string {
	key := [2]int{rows, skip}
	cached := rows <= 8
	if cached {
		if q, ok := s.insertSQLs.Load(key); ok {
			return q.(string)
		}
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO ` + s.table + ` (id, topic, ordering_key, payload, metadata, created_ms) VALUES `)
	for i := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	if s.dialect == Postgres {
		// Wakes listening relays at commit. In the INSERT it costs a
		// function call per row (PostgreSQL sends one notification per
		// transaction and channel), too little to measure; an AFTER
		// INSERT trigger doing the same added 3-4% to a one-INSERT
		// business transaction.
		q.WriteString(` RETURNING pg_notify('` + s.channel() + `', '')`)
	}
	query := s.dialect.bindFrom(q.String(), skip)
	if cached {
		s.insertSQLs.Store(key, query)
	}
	return query
}

// metadataJSON is the metadata column: the message's metadata as a JSON
// object. Written by hand because json.Marshal of a map sorts its keys and
// reflects on every value, which took as long as the rest of Add's Go work;
// the relay reads it back with json.Unmarshal.
func metadataJSON(o sdk.Outgoing) string {
	b := make([]byte, 0, 160)
	b = append(b, '{')
	o.Metadata(func(k, v string) bool {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, v)
		return true
	})
	return string(append(b, '}'))
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 goes through
// encoding/json, which replaces it as it always did here.
func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // a string always encodes
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Lag is the outbox backlog: what has been committed but not yet published.
type Lag struct {
	// Unsent is the number of messages not yet published, not counting
	// those set aside.
	Unsent int64
	// OldestAge is how long the oldest unsent message has waited; zero when
	// Unsent is zero.
	OldestAge time.Duration
	// SetAside is the number of messages the relay set aside (the
	// publisher refused them for good, or their rows could not be read),
	// which wait in <Table>_failed for an operator (Store.SetAside). They
	// are never published unless moved back, so anything above zero is
	// worth an alert.
	SetAside int64
}

// Lag reports the backlog, for metrics and alerts.
func (s *Store) Lag(ctx context.Context) (Lag, error) {
	var n, aside int64
	var oldest sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_ms), (SELECT COUNT(*) FROM `+s.failedTable()+`) FROM `+s.table+` WHERE sent_ms IS NULL`).Scan(&n, &oldest, &aside)
	if err != nil {
		return Lag{}, fmt.Errorf("outbox: read lag of %s and %s: %w", s.table, s.failedTable(), err)
	}
	l := Lag{Unsent: n, SetAside: aside}
	if oldest.Valid {
		l.OldestAge = max(0, s.now().Sub(time.UnixMilli(oldest.Int64)))
	}
	return l, nil
}

// markSent records rows as published: deleted, or stamped for Cleanup when
// the relay keeps them for a retention period.
func (s *Store) markSent(ctx context.Context, rows []row, keep bool) error {
	if len(rows) == 0 {
		return nil
	}
	q, args := s.markSQL(rows, keep)
	// A mark that fails turns into duplicates once the lease ends, so it is
	// worth a few quick tries.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.exec(ctx, q, args...); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	return err
}

// markSQL is the statement that marks rows published: a delete, or when
// keep a sent_ms stamp (on PostgreSQL a move to the published table).
func (s *Store) markSQL(rows []row, keep bool) (string, []any) {
	switch {
	case keep && s.dialect == Postgres:
		q, args := s.seqIn(`WITH moved AS (DELETE FROM `+s.table+` WHERE seq`, rows)
		return q + ` RETURNING ` + rowColumns + `)
INSERT INTO ` + s.published() + ` (` + rowColumns + `, sent_ms) SELECT ` + rowColumns + `, ?::bigint FROM moved`, append(args, s.now().UnixMilli())
	case keep:
		return s.seqIn(`UPDATE `+s.table+` SET sent_ms = ? WHERE seq`, rows, s.now().UnixMilli())
	}
	return s.seqIn(`DELETE FROM `+s.table+` WHERE seq`, rows)
}

// published is the PostgreSQL table of published rows kept for a
// retention.
func (s *Store) published() string { return s.table + "_published" }

// release gives rows back before their lease ends, after a failed publish.
func (s *Store) release(ctx context.Context, rows []row, relay string) error {
	if len(rows) == 0 {
		return nil
	}
	q, args := s.seqIn(`UPDATE `+s.table+` SET lease_until_ms = 0, claimed_by = '' WHERE claimed_by = ? AND seq`, rows, relay)
	return s.exec(ctx, q, args...)
}

// Cleanup deletes messages published more than olderThan ago (kept when the
// relay runs with a Retention) and reports how many.
func (s *Store) Cleanup(ctx context.Context, olderThan time.Duration) (int64, error) {
	cutoff := s.now().Add(-olderThan).UnixMilli()
	q := `DELETE FROM ` + s.table + ` WHERE sent_ms IS NOT NULL AND sent_ms < ?`
	if s.dialect == Postgres {
		q = `DELETE FROM ` + s.published() + ` WHERE sent_ms < ?`
	}
	var n int64
	var err error
	if s.dialect == SQLite {
		err = s.sqliteWrite(ctx, func(conn *sql.Conn) error {
			res, err := conn.ExecContext(ctx, q, cutoff)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
	} else {
		var res sql.Result
		if res, err = s.db.ExecContext(ctx, s.dialect.bind(q), cutoff); err == nil {
			n, err = res.RowsAffected()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("outbox: clean up %s: %w", s.table, err)
	}
	return n, nil
}

// message rebuilds the sdk message of a row.
func (r row) message() (*sdk.Message, error) {
	md := map[string]string{}
	if err := json.Unmarshal([]byte(r.metadata), &md); err != nil {
		return nil, fmt.Errorf("outbox: row %d (message %s): %w: its metadata is not a JSON object: %w", r.seq, sdk.QuoteName(r.id), errUnreadableRow, err)
	}
	m := &sdk.Message{
		ID: r.id, Payload: r.payload, Metadata: md,
		EventType: md[sdk.KeyEventType], Source: md[sdk.KeySource], ContentType: md[sdk.KeyContentType],
		CorrelationID: md[sdk.KeyCorrelationID], CausationID: md[sdk.KeyCausationID], OrderingKey: r.orderingKey,
	}
	if ts, err := time.Parse(time.RFC3339Nano, md[sdk.KeyTime]); err == nil {
		m.Time = ts
	}
	return m, nil
}

// TableName returns the outbox table of s, for tooling and benchmarks.
func TableName(s *Store) string { return s.table }

// capture gives m, as Publish would, the correlation and causation of ctx
// and, when ctx holds a span, its W3C trace context.
func capture(ctx context.Context, m *sdk.Message) {
	sdk.Inherit(ctx, m)
	if !trace.SpanContextFromContext(ctx).IsValid() || m.Get(sdk.KeyTraceParent) != "" {
		return
	}
	if m.Metadata == nil {
		m.Metadata = map[string]string{}
	}
	propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(m.Metadata))
}

// InTx runs fn in a transaction of the store's database and commits it when
// fn returns nil; it rolls back when fn returns an error or panics (the
// panic goes on). Business rows and the messages fn adds with Add or
// ExecAndAdd are then written together or not at all.
func (s *Store) InTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: begin a transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: commit: %w", err)
	}
	committed = true
	return nil
}
