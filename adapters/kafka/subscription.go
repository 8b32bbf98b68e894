package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/adapters/internal/repeated"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// subscription is one member of a consumer group on one topic (or, for a
// reply topic, a reader without a group). The engine gets each record with
// its partition as the ordering key, so a partition's records are handled
// one at a time and in order; an ack marks the record's offset for commit.
// Kafka cannot take a record back, so the engine redelivers a nacked one
// itself before the next of its partition.
type subscription struct {
	t      *Transport
	topic  string
	group  string // "" for a reply topic
	client *kgo.Client
	// repeated logs records that carry a header more than once.
	repeated *repeated.Reporter

	mu          sync.Mutex
	outstanding map[int32]int // partition -> records received and not acked
	settled     chan struct{} // closed and replaced when outstanding drops
	closing     bool
	// incarnation counts the times the topic was found deleted and created
	// again: a record of an earlier one is not marked for commit, as its
	// offset means nothing in the topic read now.
	incarnation uint64
	// marking is held for reading while acks are marked, and for writing
	// while the topic is read anew, so that no mark of the old topic
	// lands on the new one.
	marking sync.RWMutex
}

// ackID is a record's ack id, with the incarnation of the topic it was
// read from; a batch's come from one allocation.
type ackID struct {
	r           *kgo.Record
	incarnation uint64
}

func (t *Transport) subscribe(topic, group string, oldest bool) (driver.Subscription, error) {
	s := &subscription{t: t, topic: topic, group: group, outstanding: map[int32]int{}, settled: make(chan struct{}),
		repeated: repeated.New(t.logger, "kafka", "the last value, as watermill-kafka and Kafka's lastHeader read it")}
	var opts []kgo.Opt
	if group != "" {
		opts = append(t.s.consumerOptions(topic, group, oldest), kgo.OnPartitionsRevoked(s.revoked))
	} else {
		opts = append(t.s.clientOptions(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchMaxWait(t.s.FetchMaxWait))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consume %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	s.client = client
	if err := t.subs.Add(s); err != nil {
		return nil, fmt.Errorf("kafka: transport %w", err)
	}
	return s, nil
}

// ReceiveBatch polls for up to max records.
func (s *subscription) ReceiveBatch(ctx context.Context, max int) ([]*driver.Message, error) {
	fetches := s.client.PollRecords(ctx, max)
	if fetches.IsClientClosed() {
		return nil, fmt.Errorf("kafka: subscription %w", sdk.ErrClosed)
	}
	if ctx.Err() != nil && fetches.NumRecords() == 0 {
		return nil, ctx.Err()
	}
	var fetchErr error
	recreated := false
	fetches.EachError(func(topic string, partition int32, err error) {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		case errors.Is(err, kerr.UnknownTopicID) && topic == s.topic:
			recreated = true
		default:
			fetchErr = errors.Join(fetchErr, fmt.Errorf("kafka: fetch %s[%d] on %s: %w", topic, partition, s.t.s.where(), err))
		}
	})
	if recreated {
		s.readRecreated()
	}
	records := fetches.Records()
	if len(records) == 0 {
		return nil, fetchErr
	}
	// One allocation a batch for the messages, one for their pointers, one
	// for their ack ids and one for the text of their headers.
	out := make([]*driver.Message, len(records))
	msgs := make([]driver.Message, len(records))
	ids := make([]ackID, len(records))
	if fromRecords(msgs, records) {
		for i, r := range records {
			if counts := repeatedHeaders(r); counts != nil {
				s.repeated.Report(r.Topic, s.group, msgs[i].ID, counts)
			}
		}
	}
	s.mu.Lock()
	for i, r := range records {
		s.outstanding[r.Partition]++
		ids[i] = ackID{r: r, incarnation: s.incarnation}
		m := &msgs[i]
		m.AckID = &ids[i]
		m.OrderingKey = strconv.Itoa(int(r.Partition))
		out[i] = m
	}
	s.mu.Unlock()
	if fetchErr != nil {
		s.t.logger.Warn("kafka: some partitions could not be fetched; retrying", "topic", s.topic, "group", s.group, "error", fetchErr)
	}
	return out, nil
}

// readRecreated makes the subscription read its topic again after the
// cluster answered that the topic it reads is not the one it knows
// (UNKNOWN_TOPIC_ID): the topic was deleted and created again (or the
// cluster, say kfake, restarted without its data). franz-go never
// follows such a topic by itself; purged and added again it reads the new
// one, from the group's committed offsets or, without them, where a new
// group starts, and drops the old one's uncommitted offsets. Records of
// the old topic still held are handled, but their acks mark nothing.
func (s *subscription) readRecreated() {
	s.marking.Lock()
	defer s.marking.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.incarnation++
	clear(s.outstanding)
	close(s.settled)
	s.settled = make(chan struct{})
	s.mu.Unlock()
	s.t.logger.Warn("kafka: the topic was deleted and created again while this subscription read it; reading the new one",
		"topic", s.topic, "group", s.group, "server", s.t.s.where())
	s.client.PurgeTopicsFromConsuming(s.topic)
	s.client.AddConsumeTopics(s.topic)
}

// SendAcks marks the records' offsets for commit (sent every second, on a
// rebalance and on close), but those of a topic since created again.
func (s *subscription) SendAcks(_ context.Context, ids []driver.AckID) error {
	s.marking.RLock()
	defer s.marking.RUnlock()
	records := make([]*kgo.Record, 0, len(ids))
	s.mu.Lock()
	incarnation := s.incarnation
	for _, id := range ids {
		if a := id.(*ackID); a.incarnation == incarnation {
			records = append(records, a.r)
		}
	}
	s.mu.Unlock()
	// Marked before they count as settled: a rebalance waiting for them
	// commits what is marked once they are.
	if s.group != "" && len(records) > 0 {
		s.client.MarkCommitRecords(records...)
	}
	s.mu.Lock()
	if s.incarnation == incarnation {
		for _, r := range records {
			s.outstanding[r.Partition]--
		}
	}
	close(s.settled)
	s.settled = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// revoked runs when the group takes partitions from this member: it waits
// (up to rebalance_timeout) for the records of those partitions the engine
// still holds to be handled, then commits, so the next owner starts after
// them and a key's order holds across the rebalance.
func (s *subscription) revoked(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	ctx, cancel := context.WithTimeout(ctx, s.t.s.RebalanceTimeout)
	defer cancel()
	for {
		s.mu.Lock()
		busy := 0
		for _, p := range lost[s.topic] {
			busy += s.outstanding[p]
		}
		settled, closing := s.settled, s.closing
		s.mu.Unlock()
		if busy == 0 || closing {
			break
		}
		select {
		case <-settled:
		case <-ctx.Done():
			s.t.logger.Warn("kafka: partitions revoked while records were still being handled; the next owner will get them again",
				"topic", s.topic, "group", s.group, "records", busy)
			return
		}
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.t.logger.Warn("kafka: committing offsets at a rebalance failed; the next owner will get some records again",
			"topic", s.topic, "group", s.group, "error", err)
	}
}

// CanNack: Kafka has no way to give a record back.
func (s *subscription) CanNack() bool { return false }

// SendNacks is never called (CanNack is false).
func (s *subscription) SendNacks(context.Context, []driver.AckID, time.Duration) error {
	return errors.New("kafka: SendNacks called on a subscription that cannot nack")
}

// ExtendAcks has nothing to do: the member keeps its partitions while it
// heartbeats.
func (s *subscription) ExtendAcks(context.Context, []driver.AckID) error { return nil }

// Options: up to 500 records a poll; a nacked record comes again after
// nack_delay.
func (s *subscription) Options() driver.Options {
	return driver.Options{MaxBatch: 500, RedeliveryDelay: s.t.s.NackDelay}
}

// Close commits the marked offsets and leaves the group, so the others
// rebalance at once; a reply subscription deletes its topic. Only the
// first call does: the engine's Stop and the transport's Close may both
// call it, at once, and franz-go's Client.Close must run once.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	defer s.t.subs.Remove(s)
	if s.group == "" {
		s.client.Close()
		return s.t.deleteTopic(s.topic)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.client.CommitMarkedOffsets(ctx)
	s.client.Close()
	if err != nil {
		return fmt.Errorf("kafka: commit offsets of group %s on close: %w", sdk.QuoteName(s.group), err)
	}
	return nil
}
