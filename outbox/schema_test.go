package outbox_test

import (
	"os"
	"strings"
	"testing"

	"github.com/msgkit/msgkit/outbox"
)

// The SQL shipped in docs/outbox.md must be what Migrate runs.
func TestDocsShipTheSchema(t *testing.T) {
	doc, err := os.ReadFile("../docs/outbox.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []outbox.Dialect{outbox.Postgres, outbox.MySQL, outbox.SQLite} {
		for _, stmt := range outbox.SchemaSQL(d, "msgkit_outbox", "msgkit_inbox") {
			if !strings.Contains(string(doc), strings.TrimSpace(stmt)+";") {
				t.Errorf("docs/outbox.md lacks the %s statement:\n%s", d, stmt)
			}
		}
	}
}
