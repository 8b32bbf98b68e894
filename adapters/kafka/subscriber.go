package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/sdk"
)

// Subscriber consumes topics as a member of one Kafka consumer group (or,
// for a reply topic, without a group).
//
// It is written on sarama's ConsumerGroup rather than on watermill-kafka's
// subscriber, which v3.1.4 falls short in three ways that lose or stall
// messages here: when the subscription is cancelled right after the handler
// acked, its select may take the cancellation and drop the ack, so every
// graceful shutdown redelivered the last message of each partition; a record
// it cannot decode stops the partition and restarts it at the same offset,
// forever; and a rebalance waits for a message no handler reads.
type Subscriber struct {
	t          *Transport
	group      string
	replyTopic string

	mu      sync.Mutex
	members map[string]chan *message.Message // topic -> channel of its running member

	closing   chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Subscribe makes sure topic exists and starts consuming it as one member of
// the group. The messages of one partition come one at a time, each after
// the previous one was acked (that is what keeps per-key order); the
// member's partitions are consumed concurrently, through one channel.
// Calling Subscribe again for a topic while its channel is open returns the
// same channel (more readers, not another member, so a subscription with
// concurrency N does not make the group rebalance N times). The channel
// closes when the first call's ctx is cancelled or the subscriber closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if out, ok := s.members[topic]; ok {
		return out, nil
	}
	out := make(chan *message.Message)
	if err := s.start(ctx, topic, out); err != nil {
		return nil, err
	}
	return out, nil
}

// start joins the group for topic (or reads the reply topic) and delivers
// to out. s.mu is held.
func (s *Subscriber) start(ctx context.Context, topic string, out chan *message.Message) error {
	select {
	case <-s.closing:
		return fmt.Errorf("kafka: subscribe to %q: subscriber %w", topic, sdk.ErrClosed)
	default:
	}
	partitions := s.t.s.partitions
	if s.replyTopic != "" {
		partitions = 1
	}
	if err := s.t.ensureTopic(topic, partitions); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &claimHandler{sub: s, ctx: ctx, out: out}
	var run func()
	if s.group != "" {
		cg, err := sarama.NewConsumerGroup(s.t.s.brokers, s.group, s.t.s.saramaConfig())
		if err != nil {
			cancel()
			return fmt.Errorf("kafka: join group %q for %q: %w", s.group, topic, connectError(s.t.s, err))
		}
		run = func() { s.consumeGroup(ctx, cg, topic, h) }
	} else {
		cfg := s.t.s.saramaConfig()
		consumer, err := sarama.NewConsumer(s.t.s.brokers, cfg)
		if err != nil {
			cancel()
			return fmt.Errorf("kafka: consume %q: %w", topic, connectError(s.t.s, err))
		}
		run = func() { s.consumeAll(ctx, consumer, topic, h) }
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		select {
		case <-s.closing:
		case <-ctx.Done():
		}
		cancel()
	}()
	if s.members == nil {
		s.members = map[string]chan *message.Message{}
	}
	s.members[topic] = out
	go func() {
		defer s.wg.Done()
		run()
		s.mu.Lock()
		delete(s.members, topic)
		s.mu.Unlock()
		close(out)
	}()
	return nil
}

// consumeGroup runs sessions of the group until ctx ends. Consume returns at
// every rebalance; the loop joins again.
func (s *Subscriber) consumeGroup(ctx context.Context, cg sarama.ConsumerGroup, topic string, h *claimHandler) {
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			s.t.logger.Warn("kafka: consumer group error", "group", s.group, "topic", topic, "error", err)
		}
	}()
	defer func() {
		if err := cg.Close(); err != nil { // leaves the group, so the others rebalance at once
			s.t.logger.Warn("kafka: leave consumer group", "group", s.group, "error", err)
		}
		<-errsDone
	}()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := cg.Consume(ctx, []string{topic}, h)
		if err == nil || ctx.Err() != nil {
			backoff = 100 * time.Millisecond
			continue
		}
		s.t.logger.Warn("kafka: consume failed; retrying", "group", s.group, "topic", topic, "error", err, "retry_in", backoff, "hint", consumeHint(err))
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// consumeAll reads every partition of topic from the oldest offset, without
// a group and without committing: the reply topic is private and new.
func (s *Subscriber) consumeAll(ctx context.Context, consumer sarama.Consumer, topic string, h *claimHandler) {
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		s.t.logger.Warn("kafka: list partitions", "topic", topic, "error", err)
		return
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			s.t.logger.Warn("kafka: consume partition", "topic", topic, "partition", p, "error", err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case rec, ok := <-pc.Messages():
					if !ok || !h.deliver(ctx, nil, rec) {
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Close stops consuming and leaves the group; messages not acked yet are
// redelivered to the group. A reply subscriber also deletes its topic.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.t.forget(s)
		close(s.closing)
		s.wg.Wait()
		if s.replyTopic != "" {
			if err := s.t.admin.DeleteTopic(s.replyTopic); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				s.t.logger.Warn("kafka: could not delete the reply topic", "topic", s.replyTopic, "error", err)
			}
		}
	})
	return s.closeErr
}

// claimHandler hands records of the claimed partitions to the subscription
// channel and marks each offset once its message is acked.
type claimHandler struct {
	sub *Subscriber
	ctx context.Context // the subscription's; cancelled on close
	out chan<- *message.Message
}

func (h *claimHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *claimHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case rec, ok := <-claim.Messages():
			if !ok || !h.deliver(sess.Context(), sess, rec) {
				return nil
			}
		case <-sess.Context().Done():
			return nil
		}
	}
}

// deliver sends rec to a handler until it is acked, resending after each
// nack. It returns false when the claim should stop. Once a handler holds
// the message, deliver waits for its verdict even through a rebalance (the
// session lasts until ConsumeClaim returns, up to rebalance_timeout), so a
// message handled during a rebalance is committed rather than redelivered.
func (h *claimHandler) deliver(claimCtx context.Context, sess sarama.ConsumerGroupSession, rec *sarama.ConsumerMessage) bool {
	for {
		// A redelivery is decoded again from the record: a Watermill message
		// is acked or nacked once, and the handler may have changed the
		// metadata of the one it had.
		m, _ := codec{}.Unmarshal(rec)
		m.SetContext(h.ctx)
		select {
		case h.out <- m:
		case <-claimCtx.Done():
			return false
		case <-h.ctx.Done():
			return false
		}
		select {
		case <-m.Acked():
			h.mark(sess, rec)
			return true
		case <-m.Nacked():
		case <-h.ctx.Done():
			// The subscription closes. A handler that acked just before must
			// not lose its ack to this select's random choice.
			select {
			case <-m.Acked():
				h.mark(sess, rec)
			default:
			}
			return false
		}
		if !h.nackPause(claimCtx) {
			return false
		}
	}
}

// nackPause waits nack_delay before a redelivery; false when the claim or
// the subscription ended meanwhile.
func (h *claimHandler) nackPause(claimCtx context.Context) bool {
	d := h.sub.t.s.nackDelay
	if d <= 0 {
		return true
	}
	select {
	case <-time.After(d):
		return true
	case <-claimCtx.Done():
		return false
	case <-h.ctx.Done():
		return false
	}
}

func (h *claimHandler) mark(sess sarama.ConsumerGroupSession, rec *sarama.ConsumerMessage) {
	if sess != nil {
		sess.MarkMessage(rec, "") // committed by auto-commit and when the session ends
	}
}

var (
	_ message.Subscriber = (*Subscriber)(nil)
)

// consumeHint says what to change for the errors a retry will not cure.
func consumeHint(err error) string {
	switch {
	case errors.Is(err, sarama.ErrInvalidSessionTimeout):
		return "session_timeout is outside the broker's group.min.session.timeout.ms..group.max.session.timeout.ms"
	case errors.Is(err, sarama.ErrGroupAuthorizationFailed), errors.Is(err, sarama.ErrTopicAuthorizationFailed):
		return "the SASL user lacks the ACLs to read the topic or join the group"
	default:
		return "retrying; it clears when the cluster is reachable again"
	}
}
