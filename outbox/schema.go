package outbox

// SchemaSQL returns the statements Migrate runs for the outbox table and
// NewInbox(...).Migrate for the inbox table, for a DBA who applies schema
// changes by hand or with a migration tool. docs/outbox.md ships them for
// the default table names.
func SchemaSQL(d Dialect, outboxTable, inboxTable string) []string {
	return append(d.outboxDDL(outboxTable), d.inboxDDL(inboxTable)...)
}
