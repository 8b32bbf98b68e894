package outbox

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/msgkit/msgkit/sdk"
)

// Publisher is what the relay publishes through: an *sdk.Client, or any
// decorated publisher with the same method.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...*sdk.Message) error
}

// RelayConfig configures a Relay. Zero values take the documented defaults.
type RelayConfig struct {
	// Publisher sends the messages. Required.
	Publisher Publisher
	// Name identifies this relay in leases and logs. Default: host-pid-random.
	Name string
	// BatchSize is how many messages one claim takes. Default 500.
	BatchSize int
	// Lease is how long a claimed batch is this relay's alone. A relay that
	// hangs holding a batch delays it by up to Lease; a batch whose
	// publishing takes longer than Lease may be published again by another
	// relay. On PostgreSQL the batch is held by a transaction and Lease is
	// its idle-in-transaction timeout (a relay whose process dies frees its
	// batch at once); on MySQL and SQLite it is written into the rows.
	// Default 30s.
	Lease time.Duration
	// MinPoll and MaxPoll bound the polling interval when the outbox is
	// empty: it starts at MinPoll and doubles up to MaxPoll. On PostgreSQL
	// with the pgx driver the NOTIFY that Add sends wakes the relay at once,
	// so polling is only the safety net (and what finds rows written by
	// other means). Defaults 20ms and 1s.
	MinPoll, MaxPoll time.Duration
	// Retention keeps published rows (marked sent; on PostgreSQL moved to
	// the table <Table>_published) for this long before the relay deletes
	// them; 0 deletes them as soon as they are published.
	Retention time.Duration
	// PublishAttempts is how often a batch is tried before it is released
	// for a later round (with backoff between tries). Default 3.
	PublishAttempts int
	// Logger receives publish failures. Default slog.Default().
	Logger *slog.Logger
	// DrainTimeout is how long Run, once its context ends, keeps going with
	// the batch it was relaying, so that a clean stop leaves nothing
	// published and unmarked (which would be published again). Default 10s.
	DrainTimeout time.Duration
}

// Relay moves committed messages from the outbox to the broker.
type Relay struct {
	store *Store
	cfg   RelayConfig
	retry failsafe.Executor[any]
	wake  chan struct{}
}

// NewRelay returns a relay for the store.
func (s *Store) NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Publisher == nil {
		return nil, fmt.Errorf("outbox: RelayConfig.Publisher is nil; pass the *sdk.Client to publish through")
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Name = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.MinPoll <= 0 {
		cfg.MinPoll = 20 * time.Millisecond
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = time.Second
	}
	cfg.MaxPoll = max(cfg.MaxPoll, cfg.MinPoll)
	if cfg.PublishAttempts <= 0 {
		cfg.PublishAttempts = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	policy := retrypolicy.NewBuilder[any]().
		AbortIf(func(_ any, err error) bool { return refusedForGood(err) }).
		WithMaxAttempts(cfg.PublishAttempts).
		WithBackoff(50*time.Millisecond, 2*time.Second).
		WithJitterFactor(0.25).
		Build()
	return &Relay{store: s, cfg: cfg, retry: failsafe.With[any](policy), wake: make(chan struct{}, 1)}, nil
}

// Run relays until ctx ends, then finishes the batch in flight (for up to
// DrainTimeout) and returns ctx's error. It backs off while the broker or
// the database fails and resumes when they are back. Run it for the life of
// the service: go relay.Run(ctx).
func (r *Relay) Run(ctx context.Context) error {
	if r.store.dialect == Postgres {
		if r.store.db.Stats().MaxOpenConnections == 1 {
			r.cfg.Logger.Warn("outbox relay: the database pool allows one connection, which LISTEN would hold for good and leave none for the relay's batches; polling instead (allow two or more to be woken by NOTIFY)", "relay", r.cfg.Name)
		} else {
			go r.listen(ctx)
		}
	}
	poll := r.cfg.MinPoll
	cleanupEvery := time.NewTicker(time.Minute)
	defer cleanupEvery.Stop()
	for {
		n, err := r.drainingOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err != nil:
			r.cfg.Logger.Warn("outbox relay: batch failed; backing off", "relay", r.cfg.Name, "error", err, "retry_in", poll)
			poll = min(2*poll, r.cfg.MaxPoll)
		case n == r.cfg.BatchSize:
			poll = r.cfg.MinPoll
			continue // more waiting
		case n > 0:
			poll = r.cfg.MinPoll
		default:
			poll = min(2*poll, r.cfg.MaxPoll)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
			if err == nil {
				poll = r.cfg.MinPoll
			}
		case <-cleanupEvery.C:
			if r.cfg.Retention > 0 {
				if _, err := r.store.Cleanup(ctx, r.cfg.Retention); err != nil {
					r.cfg.Logger.Warn("outbox relay: cleanup failed", "error", err)
				}
			}
		case <-time.After(poll):
		}
	}
}

// RunOnce claims one batch, publishes it in order and marks what was
// published. A message the publisher refuses for good (larger than the
// broker carries, metadata it cannot carry) or whose row cannot be read is
// set aside (Store.SetAside) and the rest go on. It returns how many
// messages it published or set aside. On a publish failure it marks what
// went out, gives the rest back, and returns the error.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	if r.store.dialect == Postgres {
		return r.runLocked(ctx)
	}
	now := r.store.now()
	rows, err := r.store.claim(ctx, r.cfg.Name, now.UnixMilli(), now.Add(r.cfg.Lease).UnixMilli(), r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("outbox: claim a batch from %s: %w", r.store.table, err)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	done, pubErr := r.publishInOrder(ctx, rows, func(rw row, reason error) error {
		sctx, cancel := markContext(ctx)
		defer cancel()
		for _, st := range r.store.setAsideSQL(rw, reasonText(reason)) {
			if err := r.store.exec(sctx, st.query, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	markCtx, cancel := markContext(ctx)
	defer cancel()
	if err := r.store.markSent(markCtx, rows[:done], r.cfg.Retention > 0); err != nil {
		// Published but not marked: they go out again after the lease, which
		// at-least-once allows and the consumer's inbox absorbs.
		return done, fmt.Errorf("outbox: mark %d published message(s) sent: %w", done, err)
	}
	if pubErr != nil {
		if err := r.store.release(markCtx, rows[done:], r.cfg.Name); err != nil {
			r.cfg.Logger.Warn("outbox relay: releasing unpublished messages failed; they wait for the lease to end", "error", err)
		}
		return done, pubErr
	}
	return done, nil
}

// runLocked is RunOnce on PostgreSQL: the batch's rows stay locked (FOR
// UPDATE SKIP LOCKED) by one transaction while they are published, and
// the same transaction deletes them. Writing a lease into every row
// instead, then deleting in a second transaction, made the relay half as
// fast as that hand-written loop (docs/outbox.md, "Numbers"). The lease is
// the server's: the session ends when the transaction idles longer than
// Lease, which frees the rows for another relay.
func (r *Relay) runLocked(ctx context.Context) (int, error) {
	batch, err := r.store.lockBatch(ctx, r.cfg.Lease, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("outbox: claim a batch from %s: %w", r.store.table, err)
	}
	defer batch.close()
	rows := batch.rows
	done, pubErr := r.publishInOrder(ctx, rows, func(rw row, reason error) error {
		// In the batch's transaction: it holds the row's lock.
		sctx, cancel := markContext(ctx)
		defer cancel()
		st := r.store.setAsideSQL(rw, reasonText(reason))[0]
		_, err := batch.tx.ExecContext(sctx, st.query, st.args...)
		return err
	})
	markCtx, cancel := markContext(ctx)
	defer cancel()
	keep := r.cfg.Retention > 0
	if err := r.store.commitSent(markCtx, batch, rows[:done], keep); err != nil {
		// The transaction is gone: most likely publishing took longer than
		// the lease and the server ended the session. Marking outside it
		// is still right (whoever published a row may delete it), and
		// without it a relay whose batches always outlast the lease would
		// publish the same batch for ever. Another relay that took the
		// rows meanwhile holds them; this waits for it and finds them gone,
		// or marks them if it gave them back. The batch's connection goes
		// back first: the pool may have no other.
		batch.close()
		if err2 := r.store.markSent(markCtx, rows[:done], keep); err2 != nil {
			// Published but not marked: the rows go out again, which
			// at-least-once allows and the consumer's inbox absorbs.
			return done, fmt.Errorf("outbox: mark %d published message(s) sent: %w", done, errors.Join(err, err2))
		}
		r.cfg.Logger.Warn("outbox relay: the batch's transaction ended before the relay marked it, and another relay may have published it again; "+
			"if publishing a batch takes longer than Lease, raise Lease or lower BatchSize", "relay", r.cfg.Name, "lease", r.cfg.Lease, "error", err)
	}
	return done, pubErr
}

// markContext is the context marking runs in: a relay told to stop right
// after a publish still records it, where it can.
func markContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// publishInOrder publishes rows in seq order, consecutive rows of one
// topic in one Publish call, and returns how many it is done with (went
// out, or were set aside by setAside) before the first failure, and that
// failure.
func (r *Relay) publishInOrder(ctx context.Context, rows []row, setAside func(row, error) error) (int, error) {
	done := 0
	for done < len(rows) {
		end := done + 1
		for end < len(rows) && rows[end].topic == rows[done].topic {
			end++
		}
		n, err := r.publishGroup(ctx, rows[done:end], setAside)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// publishGroup publishes rows of one topic in one call. When a message is
// refused for good, it publishes them one by one instead, setting aside
// each refused one, so that the others still go out in order. It returns
// how many it is done with before the first other failure.
func (r *Relay) publishGroup(ctx context.Context, rows []row, setAside func(row, error) error) (int, error) {
	err := r.publish(ctx, rows)
	if err == nil || !refusedForGood(err) {
		if err != nil {
			return 0, err
		}
		return len(rows), nil
	}
	for i, rw := range rows {
		err := r.publish(ctx, rows[i:i+1])
		if err == nil {
			continue
		}
		if !refusedForGood(err) {
			return i, err
		}
		if err := setAside(rw, err); err != nil {
			return i, fmt.Errorf("outbox: set aside message %s (row %d), which the publisher refuses: %w", sdk.QuoteName(rw.id), rw.seq, err)
		}
		r.cfg.Logger.Error("outbox relay: a message is refused for good and set aside; the rest go on (Store.SetAside lists it)",
			"relay", r.cfg.Name, "id", rw.id, "topic", rw.topic, "row", rw.seq, "table", r.store.failedTable(), "error", err)
	}
	return len(rows), nil
}

func (r *Relay) publish(ctx context.Context, rows []row) error {
	msgs := make([]*sdk.Message, len(rows))
	for i, rw := range rows {
		m, err := rw.message()
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	topic := rows[0].topic
	published := false
	err := r.retry.WithContext(ctx).Run(func() error {
		if err := r.cfg.Publisher.Publish(ctx, topic, msgs...); err != nil {
			return fmt.Errorf("outbox: publish %d message(s) to %s: %w", len(msgs), sdk.QuoteName(topic), err)
		}
		published = true
		return nil
	})
	if published {
		// failsafe-go reports a context cancelled during the last attempt
		// even when that attempt succeeded; these messages went out and
		// must be marked, or they go out again.
		return nil
	}
	return err
}

// listen wakes the relay on the NOTIFY that Add sends. It needs the pgx
// driver (database/sql with "pgx"); with another driver the relay polls.
func (r *Relay) listen(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotPgx) {
			r.cfg.Logger.Info("outbox relay: the database/sql driver is not pgx; polling for new messages instead of LISTEN")
			return
		}
		r.cfg.Logger.Warn("outbox relay: LISTEN failed; polling until it works again", "error", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

var errNotPgx = errors.New("not a pgx connection")

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.store.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return errNotPgx
		}
		pc := sc.Conn()
		if _, err := pc.Exec(ctx, `LISTEN "`+r.store.channel()+`"`); err != nil {
			return err
		}
		r.signal() // catch up on anything inserted before LISTEN
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// The connection is still subscribed: never return it to the pool.
				return errors.Join(err, driver.ErrBadConn)
			}
			r.signal()
		}
	})
}

func (r *Relay) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// drainingOnce relays one batch with a context that outlives ctx by
// DrainTimeout, so that a stop in the middle of a batch lets it be published
// and marked rather than cut between the two.
func (r *Relay) drainingOnce(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	batchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(r.cfg.DrainTimeout, cancel)
		context.AfterFunc(batchCtx, func() { t.Stop() })
	})
	defer stop()
	return r.RunOnce(batchCtx)
}
