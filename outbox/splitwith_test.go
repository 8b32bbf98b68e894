package outbox

import "testing"

func TestSplitWith(t *testing.T) {
	for _, c := range []struct{ query, withs, main string }{
		{"INSERT INTO t VALUES ($1)", "WITH ", " INSERT INTO t VALUES ($1)"},
		{"  \n-- a comment\n/* and another */ update t SET a = 1", "WITH ", " update t SET a = 1"},
		{"WITH x AS (SELECT 1) DELETE FROM t", "WITH ", ", x AS (SELECT 1) DELETE FROM t"},
		{"with recursive r(n) AS (SELECT 1) SELECT * FROM r", "WITH RECURSIVE ", ", r(n) AS (SELECT 1) SELECT * FROM r"},
		{"WITH recursive_ish AS (SELECT 1) SELECT 1", "WITH ", ", recursive_ish AS (SELECT 1) SELECT 1"},
	} {
		withs, main, err := splitWith(c.query)
		if err != nil || withs != c.withs || main != c.main {
			t.Errorf("splitWith(%q) = %q, %q, %v; want %q, %q", c.query, withs, main, err, c.withs, c.main)
		}
	}
	for _, q := range []string{"CREATE TABLE t (a INT)", "", "-- only a comment", "CALL p()"} {
		if _, _, err := splitWith(q); err == nil {
			t.Errorf("splitWith(%q) must fail", q)
		}
	}
}
