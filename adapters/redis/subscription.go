package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

var timeNow = time.Now

func (t *Transport) createGroup(ctx context.Context, topic, group string) error {
	start := "$"
	if driver.GroupStartOldest(ctx, t.s.startOldest) {
		start = "0"
	}
	err := errUntilDone(ctx, func() error { return t.client.XGroupCreateMkStream(ctx, topic, group, start).Err() })
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis: create consumer group %s on stream %s at %s: %w", sdk.QuoteName(group), sdk.QuoteName(topic), t.s.where(), explainRefusal(err))
	}
	return nil
}

func consumerName(group string) string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%d-%s", group, host, os.Getpid(), hex.EncodeToString(b))
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// subscription is one consumer of a group on one stream. It reads with
// XREADGROUP COUNT, takes over what other members left pending for
// claim_idle with XAUTOCLAIM, and hands back what it holds when it closes.
type subscription struct {
	t         *Transport
	topic     string
	group     string
	name      string
	ephemeral bool                    // a private reply stream, deleted on close
	reader    goredis.UniversalClient // its own connection, closed to interrupt a blocked XREADGROUP

	// Touched by ReceiveBatch only (one call at a time).
	cursor     string    // XAUTOCLAIM scan position
	nextClaim  time.Time // zero: claim at once, so a new member takes over what a dead one left
	recoverOwn bool      // after a read error: re-read this consumer's own pending entries

	// held are the entries read and not yet acked. After a read error the
	// consumer re-reads its own pending entries and delivers those not
	// held: an XREADGROUP whose reply was lost with the connection. A
	// plain map under a mutex: a sync.Map allocates per entry.
	heldMu sync.Mutex
	held   map[string]struct{}

	closed atomic.Bool
}

func (t *Transport) newSubscription(topic, group string, ephemeral bool) *subscription {
	return &subscription{t: t, topic: topic, group: group, name: consumerName(group), ephemeral: ephemeral,
		reader: t.s.newReader(), held: map[string]struct{}{}}
}

// ReceiveBatch returns, in this order of preference: entries of its own that
// a lost reply left pending, entries other members left idle for
// claim_idle (checked every claim_interval), and new entries, waiting up to
// block for them.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	// A blocked XREADGROUP does not watch its context: closing the reader's
	// connection interrupts it. The context ends only when the engine stops.
	stop := context.AfterFunc(ctx, func() { _ = s.reader.Close() })
	defer stop()
	count := int64(max)
	var batch []goredis.XMessage
	var err error
	if s.recoverOwn {
		if batch, err = s.readOwnPending(ctx, count); err == nil {
			s.recoverOwn = false
		}
	}
	if err == nil && len(batch) == 0 && !timeNow().Before(s.nextClaim) {
		batch, err = s.claim(ctx, count)
		if len(batch) < max {
			s.nextClaim = timeNow().Add(s.t.s.ClaimInterval)
		}
	}
	if err == nil && len(batch) == 0 {
		batch, err = s.read(ctx, count, min(s.t.s.Block, time.Until(s.nextClaim)))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, goredis.ErrClosed) { // Close closed the reader
		return nil, fmt.Errorf("redis: subscription to %s for group %s %w", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), driver.ErrClosed)
	}
	if err != nil {
		s.recoverOwn = true
		return nil, fmt.Errorf("redis: read stream %s for group %s: %w", sdk.QuoteName(s.topic), sdk.QuoteName(s.group), err)
	}
	// One allocation a batch for each of the messages, their pointers and
	// their ack ids: a *string in an AckID needs none, a string would.
	out := make([]*driver.Message, len(batch))
	msgs := make([]driver.Message, len(batch))
	ids := make([]string, len(batch))
	s.heldMu.Lock()
	for i, xm := range batch {
		s.held[xm.ID] = struct{}{}
		ids[i] = xm.ID
		decode(&msgs[i], xm.ID, xm.Values)
		msgs[i].AckID = &ids[i]
		out[i] = &msgs[i]
	}
	s.heldMu.Unlock()
	return out, nil
}

// read takes new entries for this consumer, blocking up to block.
func (s *subscription) read(ctx context.Context, count int64, block time.Duration) ([]goredis.XMessage, error) {
	return s.entries(ctx, s.reader.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: s.group, Consumer: s.name, Streams: []string{s.topic, ">"}, Count: count, Block: max(block, time.Millisecond),
	}))
}

// entries returns the entries an XREADGROUP of this subscription's stream
// read; none when it timed out, and none after creating the group again
// when it is gone.
func (s *subscription) entries(ctx context.Context, cmd *goredis.XStreamSliceCmd) ([]goredis.XMessage, error) {
	streams, err := cmd.Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, nil
	case isNoGroup(err):
		return nil, s.recreateGroup(ctx)
	case err != nil:
		return nil, err
	case len(streams) == 0:
		return nil, nil
	}
	return streams[0].Messages, nil
}

// recreateGroup creates the stream and group again when they are gone
// (deleted, or a server restart without persistence), so consumption goes
// on; what the server lost cannot be recovered here.
func (s *subscription) recreateGroup(ctx context.Context) error {
	s.t.logger.Warn("redis: consumer group missing; creating it again", "stream", s.topic, "group", s.group)
	return s.t.createGroup(ctx, s.topic, s.group)
}

// readOwnPending returns this consumer's pending entries that it does not
// hold: entries the server assigned to it by an XREADGROUP whose reply was
// lost with the connection. Without this they would wait claim_idle.
func (s *subscription) readOwnPending(ctx context.Context, count int64) ([]goredis.XMessage, error) {
	pending, err := s.entries(ctx, s.t.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: s.group, Consumer: s.name, Streams: []string{s.topic, "0"}, Count: count,
	}))
	if err != nil {
		return nil, err
	}
	var lost []goredis.XMessage
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	for _, xm := range pending {
		if _, held := s.held[xm.ID]; !held && xm.Values != nil {
			lost = append(lost, xm)
		}
	}
	return lost, nil
}

// claim takes over entries pending in the group for longer than
// claim_idle: those of a consumer that died, or that one handed back.
func (s *subscription) claim(ctx context.Context, count int64) ([]goredis.XMessage, error) {
	if s.cursor == "" {
		s.cursor = "0-0"
	}
	msgs, next, err := s.t.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream: s.topic, Group: s.group, Consumer: s.name, MinIdle: s.t.s.ClaimIdle, Start: s.cursor, Count: count,
	}).Result()
	if isNoGroup(err) {
		return nil, nil // read creates it again
	}
	if err != nil {
		return nil, fmt.Errorf("XAUTOCLAIM: %w", err)
	}
	s.cursor = next
	return msgs, nil
}

func entryIDs(ids []driver.AckID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = *id.(*string)
	}
	return out
}

// SendAcks acks the entries with one XACK. Whether it got through or not
// they are no longer held: one still pending after a failed XACK is
// delivered again.
func (s *subscription) SendAcks(ctx context.Context, ids []driver.AckID) error {
	entries := entryIDs(ids)
	err := s.t.client.XAck(ctx, s.topic, s.group, entries...).Err()
	s.heldMu.Lock()
	for _, id := range entries {
		delete(s.held, id)
	}
	s.heldMu.Unlock()
	return err
}

// CanNack: a Redis stream has no way to hand an entry back to the group
// but to let it idle, so the engine redelivers a nacked message itself.
func (s *subscription) CanNack() bool { return false }

// SendNacks is never called (CanNack is false).
func (s *subscription) SendNacks(context.Context, []driver.AckID, time.Duration) error {
	return errors.New("redis: SendNacks called on a subscription that cannot nack")
}

// ExtendAcks keeps held entries from looking idle, so that a slow handler's
// messages are not claimed by another member.
func (s *subscription) ExtendAcks(ctx context.Context, ids []driver.AckID) error {
	return s.t.client.XClaimJustID(ctx, &goredis.XClaimArgs{
		Stream: s.topic, Group: s.group, Consumer: s.name, MinIdle: 0, Messages: entryIDs(ids),
	}).Err()
}

// Options: batches of batch_size, one XACK per batch, and claim_idle as the
// lease the engine keeps alive.
func (s *subscription) Options() driver.Options {
	return driver.Options{MaxBatch: int(s.t.s.BatchSize), Lease: s.t.s.ClaimIdle}
}

// Close hands every entry still pending under this consumer back to the
// group by marking it long idle, so the next claim by any member takes it
// at once instead of after claim_idle. A consumer that holds nothing
// removes itself from the group; a reply stream is deleted.
func (s *subscription) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	_ = s.reader.Close()
	defer s.t.subs.Remove(s)
	s.t.trim.remove(s.topic)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.ephemeral {
		return s.t.client.Del(ctx, s.topic).Err()
	}
	pending, err := s.t.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: s.topic, Group: s.group, Start: "-", End: "+", Count: 10000, Consumer: s.name,
	}).Result()
	if err != nil {
		s.t.logger.Warn("redis: listing pending messages on close failed; they will be claimed after claim_idle", "stream", s.topic, "error", err)
		return nil
	}
	if len(pending) == 0 {
		_ = s.t.client.XGroupDelConsumer(ctx, s.topic, s.group, s.name).Err()
		return nil
	}
	args := []any{"XCLAIM", s.topic, s.group, s.name, 0}
	for _, p := range pending {
		args = append(args, p.ID)
	}
	// IDLE sets the last-delivery time to now-IDLE; Redis ignores a value
	// that would put it before the epoch, so stay well inside it.
	idle := max(10*s.t.s.ClaimIdle, 24*time.Hour)
	args = append(args, "IDLE", idle.Milliseconds(), "JUSTID")
	if err := s.t.client.Do(ctx, args...).Err(); err != nil {
		s.t.logger.Warn("redis: handing back pending messages on close failed; they will be claimed after claim_idle", "stream", s.topic, "error", err)
	}
	return nil
}

var _ driver.Subscription = (*subscription)(nil)
