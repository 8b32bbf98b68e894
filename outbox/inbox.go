package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/msgkit/msgkit/sdk"
)

// Inbox records which messages a consumer has processed, in the same
// transaction as the consumer's own writes, so that a redelivered message
// changes nothing the second time.
type Inbox struct {
	db       *sql.DB
	dialect  Dialect
	table    string
	consumer string
	now      func() time.Time
}

// InboxConfig configures an Inbox.
type InboxConfig struct {
	// Dialect is Postgres, MySQL or SQLite. Required.
	Dialect Dialect
	// Table is the inbox table: a plain identifier of at most 53
	// characters (<Table>_processed names its index). Default "msgkit_inbox".
	Table string
	// Consumer names the consuming service or handler; the same message id
	// may be processed once per consumer. Required.
	Consumer string
}

// NewInbox returns an Inbox on db. Call Migrate once to create the table.
func NewInbox(db *sql.DB, cfg InboxConfig) (*Inbox, error) {
	if db == nil {
		return nil, fmt.Errorf("outbox: NewInbox: db is nil")
	}
	if err := checkDialect(cfg.Dialect); err != nil {
		return nil, err
	}
	if cfg.Table == "" {
		cfg.Table = "msgkit_inbox"
	}
	if err := checkTable("InboxConfig.Table", cfg.Table, inboxSuffix); err != nil {
		return nil, err
	}
	if cfg.Consumer == "" {
		return nil, fmt.Errorf("outbox: InboxConfig.Consumer is empty; name the consuming service (for example \"shipping\")")
	}
	if why := cfg.Dialect.notStorable(cfg.Consumer); why != "" || strings.TrimSpace(cfg.Consumer) != cfg.Consumer {
		if why == "" {
			why = "has spaces around it, which MySQL's comparison ignores at the end: remove them"
		}
		return nil, fmt.Errorf("outbox: InboxConfig.Consumer %s %s", sdk.QuoteName(cfg.Consumer), why)
	}
	if cfg.Dialect == SQLite {
		if err := checkSQLitePool(db, "NewInbox"); err != nil {
			return nil, err
		}
	}
	return &Inbox{db: db, dialect: cfg.Dialect, table: cfg.Table, consumer: cfg.Consumer, now: time.Now}, nil
}

// Migrate creates the inbox table. It is idempotent.
func (i *Inbox) Migrate(ctx context.Context) error {
	for _, stmt := range i.dialect.inboxDDL(i.table) {
		if _, err := i.db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("outbox: migrate %s inbox table %q: %w", i.dialect, i.table, err)
		}
	}
	return nil
}

// Claim records messageID as processed by this consumer in tx and reports
// whether this is the first time. When it returns false the message was
// processed before (or is being processed by a concurrent delivery, which
// Claim waits for): skip the work. The record is kept only if tx commits.
func (i *Inbox) Claim(ctx context.Context, tx Execer, messageID string) (first bool, err error) {
	if tx == nil {
		return false, fmt.Errorf("outbox: inbox claim: tx is nil; pass the transaction that does the message's work")
	}
	if messageID == "" {
		return false, fmt.Errorf("outbox: inbox claim: the message has no id")
	}
	res, err := tx.ExecContext(ctx, i.dialect.insertIgnore(i.table), i.consumer, i.dialect.inboxKey(messageID), i.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("outbox: inbox claim of message %s for %q: %w", sdk.QuoteName(messageID), i.consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: inbox claim of message %s: %w", sdk.QuoteName(messageID), err)
	}
	return n == 1, nil
}

// Handler wraps fn so that each message is processed once: it opens a
// transaction, claims the message id, runs fn with the transaction and
// commits. A message seen before is acknowledged without running fn. An
// error from fn rolls everything back, the claim included, so the
// redelivery runs fn again.
func (i *Inbox) Handler(fn func(ctx context.Context, tx *sql.Tx, msg *sdk.Message) error) sdk.Handler {
	return func(ctx context.Context, msg *sdk.Message) error {
		tx, err := i.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("outbox: inbox: begin: %w", err)
		}
		defer tx.Rollback()
		first, err := i.Claim(ctx, tx, msg.ID)
		if err != nil {
			return err
		}
		if !first {
			return nil
		}
		if err := fn(ctx, tx, msg); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("outbox: inbox: commit: %w", err)
		}
		return nil
	}
}

// Cleanup deletes records older than olderThan and reports how many. Keep
// them longer than any message can be redelivered (the broker's retention,
// the outbox relay's lease, retries), or a late duplicate is processed again.
func (i *Inbox) Cleanup(ctx context.Context, olderThan time.Duration) (int64, error) {
	cutoff := i.now().Add(-olderThan).UnixMilli()
	res, err := i.db.ExecContext(ctx, i.dialect.bind(`DELETE FROM `+i.table+` WHERE processed_ms < ?`), cutoff)
	if err != nil {
		return 0, fmt.Errorf("outbox: clean up inbox %s: %w", i.table, err)
	}
	return res.RowsAffected()
}
