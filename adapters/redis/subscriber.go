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
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	goredis "github.com/redis/go-redis/v9"

	"github.com/msgkit/msgkit/sdk"
)

var timeNow = time.Now

// Subscriber consumes as one consumer group; each Subscribe call is one
// consumer of the group.
type Subscriber struct {
	t         *Transport
	group     string
	ephemeral bool // a private reply stream, deleted on close

	mu        sync.Mutex
	closed    bool
	closing   chan struct{}
	consumers sync.WaitGroup
}

// Subscribe creates the group on the topic's stream if needed (so the group
// receives every message published from now on, or the whole stream with
// new_group_start: oldest) and starts a consumer.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("redis: subscribe to %q: subscriber %w", topic, sdk.ErrClosed)
	}
	if err := s.t.createGroup(ctx, topic, s.group); err != nil {
		return nil, err
	}
	readerOpts := *s.t.s.opts
	readerOpts.PoolSize = 1 // its own connection, closed to interrupt a blocked XREADGROUP
	readerOpts.MinIdleConns = 0
	// No silent retries: an XREADGROUP retried by go-redis after a dropped
	// connection hides that the first one may have been applied (entries
	// assigned to this consumer, reply lost). The read loop sees the error,
	// retries itself, and first recovers those entries from its own pending
	// list instead of leaving them for claim_idle.
	readerOpts.MaxRetries = -1
	c := &consumer{
		s: s, t: s.t, topic: topic, name: consumerName(s.group),
		reader: goredis.NewClient(&readerOpts),
		out:    make(chan *message.Message),
		stop:   make(chan struct{}),
	}
	s.consumers.Add(1)
	go c.watch(ctx)
	go c.run(ctx)
	return c.out, nil
}

func (t *Transport) createGroup(ctx context.Context, topic, group string) error {
	err := t.client.XGroupCreateMkStream(ctx, topic, group, t.s.groupStart()).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("redis: create consumer group %q on stream %q at %s: %w", group, topic, t.s.where(), err)
	}
	return nil
}

func consumerName(group string) string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%d-%s", group, host, os.Getpid(), hex.EncodeToString(b))
}

// Close stops every consumer; each hands its unacked messages back to the
// group before it returns.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.consumers.Wait()
	s.t.forget(s)
	return nil
}

// consumer is one member of a group reading one stream.
type consumer struct {
	s      *Subscriber
	t      *Transport
	topic  string
	name   string
	reader *goredis.Client
	out    chan *message.Message
	stop   chan struct{} // closed when the Subscribe ctx ends or the subscriber closes
	acks   []string      // acked, not yet passed to ackLoop
	cursor string        // XAUTOCLAIM scan position
	// held are the entries this consumer has read and not yet settled
	// (handed out, or acked with the XACK still on its way). After a read
	// error the consumer re-reads its own pending entries and delivers those
	// not held: an XREADGROUP whose reply was lost with the connection.
	held sync.Map
}

// watch turns ctx cancellation or Close into stop, and interrupts a blocked
// read by closing the reader's connection.
func (c *consumer) watch(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-c.s.closing:
	}
	close(c.stop)
	_ = c.reader.Close()
}

func (c *consumer) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// run delivers batches that readLoop fetches ahead: while one batch is
// handled the next is already on its way, and acks are sent by ackLoop, so
// the consumer does not wait on a round trip between batches.
func (c *consumer) run(ctx context.Context) {
	defer c.s.consumers.Done()
	defer close(c.out)
	batches := make(chan []goredis.XMessage) // unbuffered: readLoop holds at most one batch
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readLoop(ctx, batches)
	}()
	acks := make(chan []string, 4)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		c.ackLoop(acks)
	}()
	for batch := range batches {
		if !c.handle(ctx, batch, acks) {
			break
		}
		c.sendAcks(acks)
	}
	c.sendAcks(acks)
	<-c.stop // handle stops only when stop is closed; the reader sees it too
	for range batches {
	}
	<-readerDone
	close(acks)
	<-ackerDone
	c.finish()
}

// readLoop claims and reads batches and hands them to run, keeping a batch
// it holds fresh (not idle) until run takes it.
func (c *consumer) readLoop(ctx context.Context, batches chan<- []goredis.XMessage) {
	defer close(batches)
	heartbeat := time.NewTicker(max(c.t.s.claimIdle/3, time.Millisecond))
	defer heartbeat.Stop()
	nextClaim := time.Time{} // claim at once: a new member takes over what a closed or dead one left
	delay := 100 * time.Millisecond
	recoverOwn := false
	for !c.stopped() {
		var batch []goredis.XMessage
		var err error
		if recoverOwn {
			batch, err = c.readOwnPending(ctx)
			if err == nil {
				recoverOwn = false
			}
		}
		if err == nil && len(batch) == 0 && !timeNow().Before(nextClaim) {
			batch, err = c.claim(ctx)
			if len(batch) < int(c.t.s.batchSize) {
				nextClaim = timeNow().Add(c.t.s.claimInterval)
			}
		}
		if err == nil && len(batch) == 0 {
			batch, err = c.read(ctx, min(c.t.s.block, time.Until(nextClaim)))
		}
		if err != nil {
			if c.stopped() {
				return
			}
			c.t.logger.Warn("redis: reading the stream failed; retrying", "stream", c.topic, "group", c.s.group, "error", err, "retry_in", delay)
			recoverOwn = true
			select {
			case <-c.stop:
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		for _, xm := range batch {
			c.held.Store(xm.ID, struct{}{})
		}
		for len(batch) > 0 {
			select {
			case batches <- batch:
				batch = nil
			case <-heartbeat.C:
				c.refresh(batch)
			case <-c.stop:
				return // the batch stays pending; finish hands it back
			}
		}
	}
}

// sendAcks passes the acks gathered so far to ackLoop.
func (c *consumer) sendAcks(acks chan<- []string) {
	if len(c.acks) > 0 {
		acks <- c.acks
		c.acks = nil
	}
}

// ackLoop sends each group of acks with one XACK. A failed XACK is retried
// a few times; acks that never get through mean redelivery, never loss.
func (c *consumer) ackLoop(acks <-chan []string) {
	for ids := range acks {
		c.xack(ids)
		// Whether the XACK got through or not, the entries are no longer
		// held: one still pending after a failed XACK is redelivered.
		for _, id := range ids {
			c.held.Delete(id)
		}
	}
}

func (c *consumer) xack(ids []string) {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.t.client.XAck(ctx, c.topic, c.s.group, ids...).Err()
		cancel()
		if err == nil {
			return
		}
		if attempt == 5 {
			c.t.logger.Warn("redis: XACK failed; these messages will be redelivered", "stream", c.topic, "count", len(ids), "error", err)
			return
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// read takes new messages for this consumer, blocking up to block.
func (c *consumer) read(ctx context.Context, block time.Duration) ([]goredis.XMessage, error) {
	if block < time.Millisecond {
		block = time.Millisecond
	}
	streams, err := c.reader.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: c.s.group, Consumer: c.name, Streams: []string{c.topic, ">"}, Count: c.t.s.batchSize, Block: block,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			// The stream or group is gone (deleted, or a server restart without
			// persistence). Create it again so consumption goes on; what the
			// server lost cannot be recovered here.
			c.t.logger.Warn("redis: consumer group missing; creating it again", "stream", c.topic, "group", c.s.group)
			return nil, c.t.createGroup(ctx, c.topic, c.s.group)
		}
		return nil, err
	}
	if len(streams) == 0 {
		return nil, nil
	}
	return streams[0].Messages, nil
}

// readOwnPending returns this consumer's pending entries that it does not
// hold: entries the server assigned to it by an XREADGROUP whose reply was
// lost with the connection. Without this they would wait claim_idle.
func (c *consumer) readOwnPending(ctx context.Context) ([]goredis.XMessage, error) {
	streams, err := c.t.client.XReadGroup(ctx, &goredis.XReadGroupArgs{
		Group: c.s.group, Consumer: c.name, Streams: []string{c.topic, "0"}, Count: c.t.s.batchSize,
	}).Result()
	if errors.Is(err, goredis.Nil) || (err == nil && len(streams) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lost []goredis.XMessage
	for _, xm := range streams[0].Messages {
		if _, held := c.held.Load(xm.ID); !held && xm.Values != nil {
			lost = append(lost, xm)
		}
	}
	return lost, nil
}

// claim takes over messages pending in the group for longer than
// claim_idle: those of a consumer that died, or that one handed back.
func (c *consumer) claim(ctx context.Context) ([]goredis.XMessage, error) {
	if c.cursor == "" {
		c.cursor = "0-0"
	}
	msgs, next, err := c.t.client.XAutoClaim(ctx, &goredis.XAutoClaimArgs{
		Stream: c.topic, Group: c.s.group, Consumer: c.name, MinIdle: c.t.s.claimIdle, Start: c.cursor, Count: c.t.s.batchSize,
	}).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			return nil, nil // read recreates it
		}
		return nil, fmt.Errorf("XAUTOCLAIM: %w", err)
	}
	c.cursor = next
	return msgs, nil
}

// handle delivers a batch in order, one message at a time. A nacked
// message is delivered again at once. It returns false when the consumer
// must stop; what it has not acked stays pending and finish hands it back.
func (c *consumer) handle(ctx context.Context, batch []goredis.XMessage, acks chan<- []string) bool {
	heartbeat := time.NewTicker(max(c.t.s.claimIdle/3, time.Millisecond))
	defer heartbeat.Stop()
	for i, xm := range batch {
		for {
			// Decoded again for a redelivery: the nacked message stays
			// nacked, and its handler may have changed its metadata.
			m := decode(xm.Values)
			m.SetContext(ctx)
			acked, ok := c.deliver(m, heartbeat, batch[i:])
			if acked {
				c.acks = append(c.acks, xm.ID)
			}
			if !ok {
				return false
			}
			if acked {
				break
			}
		}
		if len(c.acks) >= int(c.t.s.batchSize) {
			c.sendAcks(acks)
		}
	}
	return true
}

// deliver hands m over and waits for its ack or nack. While it waits, it
// keeps the messages it holds from looking idle, so that a slow handler's
// messages are not claimed by another consumer.
func (c *consumer) deliver(m *message.Message, heartbeat *time.Ticker, held []goredis.XMessage) (acked, ok bool) {
	for sent := false; ; {
		var out chan<- *message.Message
		if !sent {
			out = c.out
		}
		select {
		case out <- m:
			sent = true
		case <-m.Acked():
			return true, true
		case <-m.Nacked():
			return false, true
		case <-heartbeat.C:
			c.refresh(held)
		case <-c.stop:
			// The handler may have acked just before the stop, and select
			// picks at random among ready cases: an ack given must not be
			// lost (the message would be handed back and handled again).
			select {
			case <-m.Acked():
				return true, false
			default:
				return false, false
			}
		}
	}
}

func (c *consumer) refresh(held []goredis.XMessage) {
	ids := make([]string, len(held))
	for i, xm := range held {
		ids[i] = xm.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.t.client.XClaimJustID(ctx, &goredis.XClaimArgs{
		Stream: c.topic, Group: c.s.group, Consumer: c.name, MinIdle: 0, Messages: ids,
	}).Err(); err != nil {
		c.t.logger.Warn("redis: refreshing held messages failed; another consumer may claim them", "stream", c.topic, "error", err)
	}
}

// finish runs after every ack was sent. It hands every message still pending
// under this consumer back to the group by marking it long idle, so the
// next claim by any member takes it at once instead of after claim_idle. A
// consumer that holds nothing removes itself from the group.
func (c *consumer) finish() {
	_ = c.reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c.s.ephemeral {
		_ = c.t.client.Del(ctx, c.topic).Err()
		return
	}
	pending, err := c.t.client.XPendingExt(ctx, &goredis.XPendingExtArgs{
		Stream: c.topic, Group: c.s.group, Start: "-", End: "+", Count: 10000, Consumer: c.name,
	}).Result()
	if err != nil {
		c.t.logger.Warn("redis: listing pending messages on close failed; they will be claimed after claim_idle", "stream", c.topic, "error", err)
		return
	}
	if len(pending) == 0 {
		_ = c.t.client.XGroupDelConsumer(ctx, c.topic, c.s.group, c.name).Err()
		return
	}
	args := []any{"XCLAIM", c.topic, c.s.group, c.name, 0}
	for _, p := range pending {
		args = append(args, p.ID)
	}
	// IDLE sets the last-delivery time to now-IDLE; Redis ignores a value
	// that would put it before the epoch, so stay well inside it.
	idle := max(10*c.t.s.claimIdle, 24*time.Hour)
	args = append(args, "IDLE", idle.Milliseconds(), "JUSTID")
	if err := c.t.client.Do(ctx, args...).Err(); err != nil {
		c.t.logger.Warn("redis: handing back pending messages on close failed; they will be claimed after claim_idle", "stream", c.topic, "error", err)
	}
}
