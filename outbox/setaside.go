package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/msgkit/msgkit/internal/clip"
	"github.com/msgkit/msgkit/sdk"
)

// A message the publisher refuses for good (larger than the broker
// carries, metadata it cannot carry) or whose row cannot be read would
// fail every batch it is in, and with a batch published in order it would
// hold back everything committed after it, for ever. The relay moves such
// a message to the table <Table>_failed, with the reason, and goes on with
// the rest: nothing is lost, and the rest are not held up.

// errUnreadableRow marks a row whose stored metadata cannot be read.
var errUnreadableRow = errors.New("unreadable row")

// refusedForGood reports whether err refuses one message for what it is:
// the SDK refused it before any network call, or its row cannot be read.
// No retry changes that.
func refusedForGood(err error) bool {
	return sdk.IsRefused(err) || errors.Is(err, errUnreadableRow)
}

// failedTable is the table of messages set aside.
func (s *Store) failedTable() string { return s.table + "_failed" }

// maxReasonBytes bounds the reason stored with a message set aside.
const maxReasonBytes = 4096

// reasonText is err's text as a text column keeps it: valid UTF-8, no NUL
// (PostgreSQL refuses both), at most maxReasonBytes.
func reasonText(err error) string {
	return clip.Text(strings.ReplaceAll(err.Error(), "\x00", "\uFFFD"), maxReasonBytes)
}

// setAsideSQL is what moves row r to the failed table with reason: one
// statement on PostgreSQL; a copy and a delete elsewhere, each of which may
// run again (the copy ignores a row it holds already).
func (s *Store) setAsideSQL(r row, reason string) []statement {
	now := s.now().UnixMilli()
	if s.dialect == Postgres {
		return []statement{{query: Postgres.bind(`WITH moved AS (DELETE FROM ` + s.table + ` WHERE seq = ? RETURNING ` + rowColumns + `)
INSERT INTO ` + s.failedTable() + ` (` + rowColumns + `, failed_ms, reason) SELECT ` + rowColumns + `, ?::bigint, ? FROM moved ON CONFLICT (seq) DO NOTHING`),
			args: []any{r.seq, now, reason}, rows: 1}}
	}
	ignore := "INSERT OR IGNORE"
	if s.dialect == MySQL {
		ignore = "INSERT IGNORE"
	}
	return []statement{
		{query: ignore + ` INTO ` + s.failedTable() + ` (` + rowColumns + `, failed_ms, reason) SELECT ` + rowColumns + `, ?, ? FROM ` + s.table + ` WHERE seq = ?`,
			args: []any{now, reason, r.seq}, rows: 1},
		{query: `DELETE FROM ` + s.table + ` WHERE seq = ?`, args: []any{r.seq}, rows: 1},
	}
}

// SetAsideMessage is a message the relay set aside: the publisher refused
// it for good, or its row could not be read. It stays in the table
// <Table>_failed until an operator deletes it or, once the cause is fixed,
// moves it back to the outbox (docs/outbox.md).
type SetAsideMessage struct {
	Seq         int64 // its place in the outbox
	ID          string
	Topic       string
	OrderingKey string
	Reason      string // the error that set it aside
	CreatedAt   time.Time
	SetAsideAt  time.Time
}

// SetAside lists up to limit messages the relay set aside, oldest first.
func (s *Store) SetAside(ctx context.Context, limit int) ([]SetAsideMessage, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("outbox: SetAside: limit must be at least 1, got %d", limit)
	}
	rs, err := s.db.QueryContext(ctx, s.dialect.bind(`SELECT seq, id, topic, ordering_key, reason, created_ms, failed_ms FROM `+s.failedTable()+` ORDER BY seq LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: read the messages set aside in %s: %w", s.failedTable(), err)
	}
	defer rs.Close()
	var out []SetAsideMessage
	for rs.Next() {
		var m SetAsideMessage
		var created, failed int64
		if err := rs.Scan(&m.Seq, &m.ID, &m.Topic, &m.OrderingKey, &m.Reason, &created, &failed); err != nil {
			return nil, fmt.Errorf("outbox: read the messages set aside in %s: %w", s.failedTable(), err)
		}
		m.CreatedAt, m.SetAsideAt = time.UnixMilli(created), time.UnixMilli(failed)
		out = append(out, m)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read the messages set aside in %s: %w", s.failedTable(), err)
	}
	return out, nil
}
