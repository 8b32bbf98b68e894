package outbox

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/msgkit/msgkit/internal/testenv"
)

// TestPostgresClaimPlanWithABacklog holds the claim's query plan, with
// 50,000 rows waiting, to what keeps a relay fast through a backlog: no scan
// of the whole table per batch, and no JIT compilation per claim. Either
// once made a claim cost tens to hundreds of milliseconds instead of a few.
func TestPostgresClaimPlanWithABacklog(t *testing.T) {
	db, err := sql.Open("pgx", testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := "plan_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	s, err := New(db, Config{Dialect: Postgres, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(`DROP TABLE IF EXISTS ` + table + `, ` + table + `_published`)
	if _, err := db.ExecContext(ctx, `INSERT INTO `+table+` (id, topic, ordering_key, payload, metadata, created_ms)
SELECT gen_random_uuid()::text, 't', CASE WHEN g % 2 = 0 THEN 'k' || (g % 100) ELSE '' END, '\x00', '{}', 0
FROM generate_series(1, 50000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE `+table); err != nil {
		t.Fatal(err)
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, pgLockPrelude, "30000"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, `EXPLAIN `+pgLockSQL(table), 500)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan on "+table) {
		t.Errorf("the claim scans the whole table for every batch:\n%s", text)
	}
	if strings.Contains(text, "JIT") {
		t.Errorf("the claim would be JIT-compiled on every call:\n%s", text)
	}
}
