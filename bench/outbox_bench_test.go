package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/msgkit/msgkit/adapters/memory"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

func postgres(b *testing.B) *sql.DB {
	db, err := sql.Open("pgx", testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// outboxTable creates a migrated outbox table holding n unsent 256 B
// messages for topic (untimed), dropped after the benchmark.
func outboxTable(b *testing.B, db *sql.DB, topic string, n int) *outbox.Store {
	return keyedOutboxTable(b, db, topic, n, 0)
}

// keyedOutboxTable is outboxTable with the messages spread over keys
// ordering keys in turn (none when keys is 0).
func keyedOutboxTable(b *testing.B, db *sql.DB, topic string, n, keys int) *outbox.Store {
	table := "bench_outbox_" + uuid.NewString()[:8]
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.Postgres, Table: table})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		db.Exec(`DROP TABLE IF EXISTS ` + table + `, ` + table + `_published`)
	})
	for added := 0; added < n; {
		k := min(1000, n-added)
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		msgs := sdkMessages(k)
		if keys > 0 {
			for i, m := range msgs {
				m.OrderingKey = "customer-" + strconv.Itoa((added+i)%keys)
			}
		}
		if err := store.Add(ctx, tx, topic, msgs...); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		added += k
	}
	return store
}

// handWritten is the loop a team would write without the library: one
// transaction per batch holding SKIP LOCKED row locks while it publishes,
// then deleting the batch.
func handWritten(b *testing.B, db *sql.DB, table string, pub outbox.Publisher, want int) {
	ctx := context.Background()
	for done := 0; done < want; {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, topic, payload, metadata FROM `+table+` WHERE sent_ms IS NULL ORDER BY seq LIMIT 500 FOR UPDATE SKIP LOCKED`)
		if err != nil {
			b.Fatal(err)
		}
		var seqs []int64
		var topic string
		var msgs []*sdk.Message
		for rows.Next() {
			var seq int64
			var id, md string
			var payload []byte
			if err := rows.Scan(&seq, &id, &topic, &payload, &md); err != nil {
				b.Fatal(err)
			}
			m := &sdk.Message{ID: id, Payload: payload}
			if err := json.Unmarshal([]byte(md), &m.Metadata); err != nil {
				b.Fatal(err)
			}
			seqs = append(seqs, seq)
			msgs = append(msgs, m)
		}
		rows.Close()
		if len(msgs) > 0 {
			if err := pub.Publish(ctx, topic, msgs...); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE seq = ANY($1)`, seqs); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		done += len(msgs)
	}
}

func relayAll(b *testing.B, store *outbox.Store, pub outbox.Publisher, want int) {
	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: pub, BatchSize: 500, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	for done := 0; done < want; {
		n, err := relay.RunOnce(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
}

// benchmarkRelay drains outbox tables of relayBlock messages, taking turns
// between the hand-written loop and the relay (see interleaveBlocks): run
// one after the other, the two drifted apart by more than the difference
// between them. Only the draining is timed.
//
// With keys > 0 the messages carry that many ordering keys in turn, which
// the relay checks and the hand-written loop ignores.
func benchmarkRelay(b *testing.B, name string, keys int, client func(b *testing.B, topic string) *sdk.Client) {
	const relayBlock = 5000
	db := postgres(b)
	drain := func(b *testing.B, run func(store *outbox.Store, c *sdk.Client)) time.Duration {
		b.StopTimer()
		topic := uniqueTopic("outbox")
		c := client(b, topic)
		store := keyedOutboxTable(b, db, topic, relayBlock, keys)
		b.StartTimer()
		start := time.Now()
		run(store, c)
		elapsed := time.Since(start)
		b.StopTimer()
		return elapsed
	}
	interleaveBlocks(b, "outbox relay postgres -> "+name, relayBlock, []variant{
		{"hand-written SKIP LOCKED loop", func(b *testing.B) time.Duration {
			return drain(b, func(store *outbox.Store, c *sdk.Client) { handWritten(b, db, tableOf(store), c, relayBlock) })
		}},
		{"relay", func(b *testing.B) time.Duration {
			return drain(b, func(store *outbox.Store, c *sdk.Client) { relayAll(b, store, c, relayBlock) })
		}},
	})
}

// tableOf reads the table name back from a store (the benchmark made it).
func tableOf(s *outbox.Store) string { return outbox.TableName(s) }

func BenchmarkOutboxRelayPostgresToMemory(b *testing.B) {
	benchmarkRelay(b, "memory", 0, memoryRelayClient)
}

// BenchmarkOutboxRelayPostgresToMemoryKeyed is the same with the messages
// spread over 100 ordering keys: what the relay's order check costs.
func BenchmarkOutboxRelayPostgresToMemoryKeyed(b *testing.B) {
	benchmarkRelay(b, "memory, 100 ordering keys", 100, memoryRelayClient)
}

// memoryRelayClient is the relay benchmarks' client on the memory broker.
func memoryRelayClient(b *testing.B, topic string) *sdk.Client {
	tr := memory.New()
	c := sdk.NewClient(tr, sdk.WithLogger(quiet))
	// A consumer group, so every message is really enqueued.
	memoryGroup(b, tr, topic, "g")
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func BenchmarkOutboxRelayPostgresToRabbitMQ(b *testing.B) {
	url := testenv.RabbitMQ(b)
	benchmarkRelay(b, "rabbitmq", 0, func(b *testing.B, topic string) *sdk.Client {
		declare(b, url, topic, "g") // a bound queue, so the broker stores every message
		return rabbitClient(b, url)
	})
}

// BenchmarkOutboxAdd measures one business transaction (an INSERT of the
// business row) bare, with Store.Add of one 256 B message, and with the two
// in one statement by Store.ExecAndAdd, on database/sql.
func BenchmarkOutboxAdd(b *testing.B) {
	db := postgres(b)
	topic := uniqueTopic("outbox-add")
	store := outboxTable(b, db, topic, 0)
	business := businessTable(b, db)
	insert := `INSERT INTO ` + business + ` (id, customer, amount, created_at) VALUES ($1, $2, $3, $4)`
	ctx := context.Background()
	order := func(b *testing.B, write func(tx *sql.Tx, args []any) error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := write(tx, []any{uuid.NewString(), "customer-7", 4200, time.Now()}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	floorInsert := floorTable(b, db, store)
	interleave(b, "business transaction on postgres, database/sql", []variant{
		{"bare INSERT", timed(func(b *testing.B) {
			order(b, func(tx *sql.Tx, args []any) error { _, err := tx.ExecContext(ctx, insert, args...); return err })
		})},
		{"+ Add", timed(func(b *testing.B) {
			order(b, func(tx *sql.Tx, args []any) error {
				if _, err := tx.ExecContext(ctx, insert, args...); err != nil {
					return err
				}
				return store.Add(ctx, tx, topic, orderCreated())
			})
		})},
		{"ExecAndAdd", timed(func(b *testing.B) {
			order(b, func(tx *sql.Tx, args []any) error {
				_, err := store.ExecAndAdd(ctx, tx, insert, args, topic, orderCreated())
				return err
			})
		})},
		{"floor: the row alone", timed(func(b *testing.B) {
			order(b, func(tx *sql.Tx, args []any) error {
				_, err := tx.ExecContext(ctx, floorInsert+insert, append(args, uuid.NewString(), topic, "customer-7", payload, floorMetadata, time.Now().UnixMilli())...)
				return err
			})
		})},
	})
}

// floorMetadata is the metadata column of orderCreated's row, made once:
// the floor times the database's work only.
var floorMetadata = func() string {
	md, _ := json.Marshal(orderCreated().ToWatermill(time.Now()).Metadata)
	return string(md)
}()

// floorTable makes a copy of store's table with its columns and primary key
// only, and returns the WITH clause that writes one row there in front of a
// business statement with four parameters: what ExecAndAdd does without
// the partial indexes and the NOTIFY. That is what any outbox costs at
// least, the floor under the Add benchmarks.
func floorTable(b *testing.B, db *sql.DB, store *outbox.Store) string {
	table := tableOf(store) + "_floor"
	if _, err := db.Exec(`CREATE TABLE ` + table + ` (LIKE ` + tableOf(store) + ` INCLUDING DEFAULTS, PRIMARY KEY (seq))`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Exec(`DROP TABLE IF EXISTS ` + table) })
	return `WITH floor AS (INSERT INTO ` + table + ` (id, topic, ordering_key, payload, metadata, created_ms) VALUES ($5, $6, $7, $8, $9, $10)) `
}

// BenchmarkOutboxAddPgx is the same on a pgx transaction: bare, the outbox
// INSERT queued in the business statement's batch (QueueAdd), and
// ExecAndAdd.
func BenchmarkOutboxAddPgx(b *testing.B) {
	db := postgres(b)
	pool, err := pgxpool.New(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	topic := uniqueTopic("outbox-add")
	store := outboxTable(b, db, topic, 0)
	business := businessTable(b, db)
	insert := `INSERT INTO ` + business + ` (id, customer, amount, created_at) VALUES ($1, $2, $3, $4)`
	ctx := context.Background()
	order := func(b *testing.B, write func(tx pgx.Tx, args []any) error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := write(tx, []any{uuid.NewString(), "customer-7", 4200, time.Now()}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	interleave(b, "business transaction on postgres, pgx", []variant{
		{"bare INSERT", timed(func(b *testing.B) {
			order(b, func(tx pgx.Tx, args []any) error { _, err := tx.Exec(ctx, insert, args...); return err })
		})},
		{"+ QueueAdd", timed(func(b *testing.B) {
			order(b, func(tx pgx.Tx, args []any) error {
				batch := &pgx.Batch{}
				batch.Queue(insert, args...)
				if err := store.QueueAdd(context.Background(), batch, topic, orderCreated()); err != nil {
					return err
				}
				return tx.SendBatch(ctx, batch).Close()
			})
		})},
		{"ExecAndAdd", timed(func(b *testing.B) {
			order(b, func(tx pgx.Tx, args []any) error {
				_, err := store.ExecAndAdd(ctx, outbox.Pgx(tx), insert, args, topic, orderCreated())
				return err
			})
		})},
	})
}

func orderCreated() *sdk.Message {
	return &sdk.Message{Payload: payload, EventType: "order.created", OrderingKey: "customer-7"}
}

// businessTable creates the benchmarks' orders table, dropped afterwards.
func businessTable(b *testing.B, db *sql.DB) string {
	business := "bench_orders_" + uuid.NewString()[:8]
	if _, err := db.Exec(`CREATE TABLE ` + business + ` (id TEXT PRIMARY KEY, customer TEXT NOT NULL, amount BIGINT NOT NULL, created_at TIMESTAMPTZ NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Exec(`DROP TABLE IF EXISTS ` + business) })
	return business
}
