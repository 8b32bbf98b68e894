package middleware

import (
	"container/list"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/msgkit/msgkit/internal/clip"
	"github.com/msgkit/msgkit/sdk"
)

// Headers a dead-lettered message carries, besides its own metadata.
const (
	KeyDLQError         = "x-dlq-error"          // the last error
	KeyDLQDeliveries    = "x-dlq-deliveries"     // deliveries seen by this process
	KeyDLQOriginalTopic = "x-dlq-original-topic" // where it came from
	KeyDLQHandler       = "x-dlq-handler"        // the consumer group that gave up
	KeyDLQTime          = "x-dlq-time"           // when, RFC 3339
	KeyDLQPermanent     = "x-dlq-permanent"      // "true" when the error was marked permanent
	// KeyDLQMetadata holds the message's metadata, packed, when it could
	// not be published as it was (bytes that are not UTF-8, more than the
	// broker carries): a JSON object of base64 keys to base64 values. The
	// dead letter then has no other metadata, and Replay unpacks it.
	KeyDLQMetadata = "x-dlq-metadata"
	// KeyDLQEnvelope is "1" on a dead letter whose metadata, even packed,
	// is more than the broker carries in headers: its payload is then a
	// JSON object of the packed metadata ("metadata", as KeyDLQMetadata
	// holds it) and the message's payload ("payload", base64), and Replay
	// takes both out of it.
	KeyDLQEnvelope = "x-dlq-envelope"
)

// dlqEnvelope is the payload of a dead letter with KeyDLQEnvelope.
type dlqEnvelope struct {
	Metadata string `json:"metadata"`
	Payload  []byte `json:"payload"`
}

// envelopeErrorBytes caps KeyDLQError on an enveloped dead letter, whose
// headers must be few.
const envelopeErrorBytes = 512

// DefaultReplayGroup is the consumer group that keeps a dead-letter topic's
// messages for Replay, unless DeadLetterConfig.ReplayGroup names another.
const DefaultReplayGroup = "replay"

// MaxDLQErrorBytes caps the KeyDLQError header: a longer error text is cut
// (at a character boundary) and says how much was cut, so that a huge error
// cannot make the dead-letter publish fail.
const MaxDLQErrorBytes = 4096

// GroupEnsurer creates a consumer group without consuming; *sdk.Client is
// one.
type GroupEnsurer interface {
	EnsureGroup(ctx context.Context, topic, group string, opts ...sdk.SubscribeOption) error
}

var _ GroupEnsurer = (*sdk.Client)(nil)

// DeadLetterConfig configures DeadLetter.
type DeadLetterConfig struct {
	// Publisher sends to the dead-letter topic. Required.
	Publisher sdk.Publisher
	// Topic names the dead-letter topic of a topic. Default: topic + ".dlq".
	// A name that is the topic itself is refused when a message is to be
	// dead-lettered (it would come back to the handler that failed it).
	Topic func(topic string) string
	// ReplayGroup is the group that keeps each dead-letter topic's messages
	// until Replay moves them. When Publisher is a GroupEnsurer (an
	// *sdk.Client), DeadLetter creates it on a dead-letter topic before the
	// first dead letter goes there, so that none is dropped by a broker
	// that keeps messages only for groups that exist (RabbitMQ, SNS, Redis
	// from the latest entry). Default DefaultReplayGroup.
	ReplayGroup string
	// MaxDeliveries is how many deliveries of a message may fail before it
	// is dead-lettered; the broker redelivers it in between. Default 3.
	MaxDeliveries int
	// Remember bounds how many message ids the delivery count is kept for.
	// Default 10,000.
	Remember int
	// OnDeadLetter is told of each dead-lettered message, for metrics and
	// logs (Observability.OnDeadLetter).
	OnDeadLetter func(msg *sdk.Message, dlqTopic string, err error)
}

// DeadLetter sends a message whose handler keeps failing to a dead-letter
// topic, with headers saying what went wrong (KeyDLQ*), and acknowledges it.
// A failure marked sdk.Permanent goes there at once; any other failure is
// returned (the message is nacked and redelivered) until MaxDeliveries
// deliveries have failed. Deliveries are counted per message id in this
// process, so with several consumer instances a message may be tried up to
// MaxDeliveries times on each. If publishing to the dead-letter topic fails,
// the message is nacked: nothing is lost.
func DeadLetter(cfg DeadLetterConfig) Middleware {
	if cfg.Publisher == nil {
		panic("middleware.DeadLetter: DeadLetterConfig.Publisher is nil")
	}
	if cfg.Topic == nil {
		cfg.Topic = func(t string) string { return t + ".dlq" }
	}
	if cfg.MaxDeliveries <= 0 {
		cfg.MaxDeliveries = 3
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 10000
	}
	if cfg.ReplayGroup == "" {
		cfg.ReplayGroup = DefaultReplayGroup
	}
	counts := newDeliveryCounts(cfg.Remember)
	var provisioned sync.Map // dead-letter topics whose replay group exists
	return func(next sdk.Handler) sdk.Handler {
		return func(ctx context.Context, msg *sdk.Message) error {
			err := call(ctx, next, msg)
			if err == nil {
				counts.forget(msg.ID)
				return nil
			}
			n := counts.add(msg.ID)
			permanent := sdk.IsPermanent(err)
			if !permanent && n < cfg.MaxDeliveries {
				return err
			}
			if dlq := cfg.Topic(msg.Topic()); dlq == msg.Topic() || dlq == msg.SubscribedTopic() {
				// Published there it would come back to this handler, to
				// fail and be dead-lettered again, for ever.
				return errors.Join(err, fmt.Errorf("dead-letter: the dead-letter topic of %s is the topic itself (DeadLetterConfig.Topic); the message stays where it is", sdk.QuoteName(msg.Topic())))
			}
			if dlqErr := provision(ctx, cfg, &provisioned, cfg.Topic(msg.Topic())); dlqErr != nil {
				return errors.Join(err, dlqErr)
			}
			if dlqErr := deadLetter(ctx, cfg, msg, err, n, permanent); dlqErr != nil {
				return errors.Join(err, dlqErr)
			}
			counts.forget(msg.ID)
			if cfg.OnDeadLetter != nil {
				cfg.OnDeadLetter(msg, cfg.Topic(msg.Topic()), err)
			}
			return nil
		}
	}
}

// provision creates the replay group on topic once per process, before the
// first dead letter is published there. Until it succeeds the message is
// nacked, so nothing is dead-lettered where it could be dropped.
func provision(ctx context.Context, cfg DeadLetterConfig, done *sync.Map, topic string) error {
	ensurer, ok := cfg.Publisher.(GroupEnsurer)
	if !ok {
		return nil
	}
	if c, ok := cfg.Publisher.(interface{ Capabilities() sdk.Capabilities }); ok && !c.Capabilities().ConsumerGroups {
		return nil // one queue per topic keeps every message whatever group reads it (SQS)
	}
	if _, ok := done.Load(topic); ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := ensurer.EnsureGroup(ctx, topic, cfg.ReplayGroup); err != nil {
		return fmt.Errorf("dead-letter topic %s: create its replay group %s before the first dead letter: %w", sdk.QuoteName(topic), sdk.QuoteName(cfg.ReplayGroup), err)
	}
	done.Store(topic, true)
	return nil
}

// capError cuts an error text to MaxDLQErrorBytes of UTF-8 (a header must
// be UTF-8 on every broker).
func capError(text string) string { return clip.Text(text, MaxDLQErrorBytes) }

// unpublishable reports whether err refuses a message for its metadata,
// which no retry can change.
func unpublishable(err error) bool {
	return errors.Is(err, sdk.ErrInvalidMetadata) || errors.Is(err, sdk.ErrMetadataTooLarge) || errors.Is(err, sdk.ErrTooManyMetadataEntries)
}

// packMetadata is KeyDLQMetadata's value for md.
func packMetadata(md map[string]string) string {
	packed := make(map[string]string, len(md))
	for k, v := range md {
		packed[base64.StdEncoding.EncodeToString([]byte(k))] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	b, _ := json.Marshal(packed) // base64 strings always encode
	return string(b)
}

// unpackMetadata reverses packMetadata.
func unpackMetadata(text string) (map[string]string, error) {
	var packed map[string]string
	if err := json.Unmarshal([]byte(text), &packed); err != nil {
		return nil, err
	}
	md := make(map[string]string, len(packed))
	for k, v := range packed {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			return nil, err
		}
		value, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, err
		}
		md[string(key)] = string(value)
	}
	return md, nil
}

func deadLetter(ctx context.Context, cfg DeadLetterConfig, msg *sdk.Message, cause error, deliveries int, permanent bool) error {
	dead := &sdk.Message{
		ID: msg.ID, Payload: msg.Payload, Metadata: make(map[string]string, len(msg.Metadata)+6),
		EventType: msg.EventType, Source: msg.Source, Time: msg.Time, ContentType: msg.ContentType,
		CorrelationID: msg.CorrelationID, CausationID: msg.CausationID, OrderingKey: msg.OrderingKey,
	}
	for k, v := range msg.Metadata {
		dead.Metadata[k] = v
	}
	headers := map[string]string{
		KeyDLQError:         capError(cause.Error()),
		KeyDLQDeliveries:    strconv.Itoa(deliveries),
		KeyDLQOriginalTopic: msg.Topic(),
		KeyDLQHandler:       msg.Group(),
		KeyDLQTime:          time.Now().UTC().Format(time.RFC3339Nano),
		KeyDLQPermanent:     strconv.FormatBool(permanent),
	}
	maps.Copy(dead.Metadata, headers)
	topic := cfg.Topic(msg.Topic())
	// Publish with a context of its own: the message is the handler's
	// responsibility until the dead-letter topic has it.
	pubCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := cfg.Publisher.Publish(pubCtx, topic, dead)
	if unpublishable(err) {
		// Its metadata, as a non-Go producer may send it, cannot be
		// published: packed into one header, so that the message is dead-
		// lettered instead of failing, and being redelivered, for ever.
		packed := &sdk.Message{ID: msg.ID, Payload: msg.Payload, Metadata: maps.Clone(headers)}
		packed.Metadata[KeyDLQMetadata] = packMetadata(msg.Metadata)
		packed.Metadata[KeyDLQError] = capError(cause.Error() + "; its metadata is packed in " + KeyDLQMetadata + ": " + err.Error())
		err = cfg.Publisher.Publish(pubCtx, topic, packed)
	}
	if unpublishable(err) {
		// Packed, it is still more than the broker carries in headers: the
		// packed metadata goes into the payload, beside the payload.
		env, _ := json.Marshal(dlqEnvelope{Metadata: packMetadata(msg.Metadata), Payload: msg.Payload}) // strings and bytes always encode
		enveloped := &sdk.Message{ID: msg.ID, Payload: env, Metadata: maps.Clone(headers)}
		enveloped.Metadata[KeyDLQEnvelope] = "1"
		enveloped.Metadata[KeyDLQError] = clip.Text(cause.Error()+"; its metadata and payload are in the payload ("+KeyDLQEnvelope+"): "+err.Error(), envelopeErrorBytes)
		err = cfg.Publisher.Publish(pubCtx, topic, enveloped)
	}
	if err != nil {
		return fmt.Errorf("dead-letter message %s to %s: %w", sdk.QuoteName(msg.ID), sdk.QuoteName(topic), err)
	}
	return nil
}

// deliveryCounts counts failed deliveries per message id, forgetting the
// ids that failed least recently beyond its bound. A forgotten id leaves
// the eviction order with its count, so an eviction always drops the
// oldest live count.
type deliveryCounts struct {
	mu    sync.Mutex
	n     map[string]*list.Element // of *failedID
	order list.List                // oldest first
	max   int
	size  atomic.Int64 // len(n), read without the lock on the success path
}

type failedID struct {
	id    string
	count int
}

func newDeliveryCounts(max int) *deliveryCounts {
	return &deliveryCounts{n: map[string]*list.Element{}, max: max}
}

func (d *deliveryCounts) add(id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.n[id]
	if !ok {
		e = d.order.PushBack(&failedID{id: id})
		d.n[id] = e
		if d.order.Len() > d.max {
			oldest := d.order.Front()
			d.order.Remove(oldest)
			delete(d.n, oldest.Value.(*failedID).id)
		}
	}
	f := e.Value.(*failedID)
	f.count++
	d.size.Store(int64(len(d.n)))
	return f.count
}

// forget drops id's count; when no message has failed lately it costs no
// lock.
func (d *deliveryCounts) forget(id string) {
	if d.size.Load() == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.n[id]; ok {
		d.order.Remove(e)
		delete(d.n, id)
	}
	d.size.Store(int64(len(d.n)))
}

// Replay moves up to limit messages (every one, when limit is 0 or less)
// from a dead-letter topic back to the topic each came from (its
// KeyDLQOriginalTopic header), with the dead-letter headers removed,
// consuming the dead-letter topic as group: the DeadLetterConfig's
// ReplayGroup (DefaultReplayGroup unless set), which holds every dead
// letter since the first. It stops when limit messages were moved, none
// arrives for idle, or one cannot be moved (it stays in the dead-letter
// topic and its error is returned). It returns how many it moved. When
// none arrived at all it says so with an error wrapping ErrNothingToReplay,
// which names the topic and the group and why a dead letter could be
// missing; a caller for which an empty topic is fine checks it with
// errors.Is.
func Replay(ctx context.Context, client *sdk.Client, dlqTopic, group string, limit int, idle time.Duration) (int, error) {
	if limit <= 0 {
		limit = math.MaxInt
	}
	var mu sync.Mutex
	moved := 0
	var failed error
	activity := make(chan struct{}, 1)
	done := make(chan struct{})
	var doneOnce sync.Once
	stop := func() { doneOnce.Do(func() { close(done) }) }
	sub, err := client.Subscribe(ctx, dlqTopic, group, func(ctx context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if moved >= limit || failed != nil {
			return errors.New("replay is stopping; left for a later replay")
		}
		err := replayOne(ctx, client, m)
		if err != nil {
			failed = err
			stop()
			return err
		}
		moved++
		select {
		case activity <- struct{}{}:
		default:
		}
		if moved >= limit {
			stop()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	timer := time.NewTimer(idle)
	defer timer.Stop()
loop:
	for {
		select {
		case <-activity:
			timer.Reset(idle)
		case <-done:
			break loop
		case <-timer.C:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := sub.Close(closeCtx)
	mu.Lock()
	defer mu.Unlock()
	if err := errors.Join(failed, closeErr, ctx.Err()); err != nil || moved > 0 {
		return moved, err
	}
	return 0, fmt.Errorf("%w: no message arrived on %q for group %q within %v: the topic holds no dead letter for that group. "+
		"If you expected some: the group keeps only what was dead-lettered after it was created (DeadLetter creates its ReplayGroup, %q by default, "+
		"before its first dead letter; a group named otherwise, or dead letters published by something else before it existed, are not kept for it "+
		"on brokers that keep messages only for existing groups), or another replay with this group took them",
		ErrNothingToReplay, dlqTopic, group, idle, DefaultReplayGroup)
}

// ErrNothingToReplay is wrapped by Replay's error when no message arrived.
var ErrNothingToReplay = errors.New("nothing to replay")

// ReplayMessage moves one dead letter m back: it publishes m to the topic
// it was dead-lettered from, with its id and without the dead-letter
// headers, as Replay does for each message. The caller then acknowledges m
// on the dead-letter topic; if that fails, the message is replayed again
// later (a duplicate, never a loss).
func ReplayMessage(ctx context.Context, client *sdk.Client, m *sdk.Message) error {
	return replayOne(ctx, client, m)
}

func replayOne(ctx context.Context, client *sdk.Client, m *sdk.Message) error {
	target := m.Get(KeyDLQOriginalTopic)
	if target == "" {
		return fmt.Errorf("replay: message %s has no %s header; it stays in the dead-letter topic", m.ID, KeyDLQOriginalTopic)
	}
	again := &sdk.Message{ID: m.ID, Payload: m.Payload, Metadata: map[string]string{},
		EventType: m.EventType, Source: m.Source, Time: m.Time, ContentType: m.ContentType,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID, OrderingKey: m.OrderingKey}
	md := m.Metadata
	if m.Get(KeyDLQEnvelope) != "" {
		var env dlqEnvelope
		if err := json.Unmarshal(m.Payload, &env); err != nil {
			return fmt.Errorf("replay: message %s: its payload is not the %s envelope (%v); it stays in the dead-letter topic", sdk.QuoteName(m.ID), KeyDLQEnvelope, err)
		}
		md = map[string]string{KeyDLQMetadata: env.Metadata}
		again.Payload = env.Payload
	}
	if text, ok := md[KeyDLQMetadata]; ok {
		unpacked, err := unpackMetadata(text)
		if err != nil {
			return fmt.Errorf("replay: message %s: its %s header cannot be read (%v); it stays in the dead-letter topic", sdk.QuoteName(m.ID), KeyDLQMetadata, err)
		}
		// The message's own metadata, standard attributes included.
		again = &sdk.Message{ID: m.ID, Payload: again.Payload, Metadata: map[string]string{},
			EventType: unpacked[sdk.KeyEventType], Source: unpacked[sdk.KeySource], ContentType: unpacked[sdk.KeyContentType],
			CorrelationID: unpacked[sdk.KeyCorrelationID], CausationID: unpacked[sdk.KeyCausationID], OrderingKey: unpacked[sdk.KeyOrderingKey]}
		again.Time, _ = time.Parse(time.RFC3339Nano, unpacked[sdk.KeyTime]) // absent or unreadable: the time of the replay
		md = unpacked
	}
	for k, v := range md {
		switch k {
		case KeyDLQError, KeyDLQDeliveries, KeyDLQOriginalTopic, KeyDLQHandler, KeyDLQTime, KeyDLQPermanent, KeyDLQMetadata, KeyDLQEnvelope, sdk.KeyAttempt:
		default:
			again.Metadata[k] = v
		}
	}
	// Not ctx: a replayed message is not caused by the dead-letter copy.
	if err := client.Publish(context.Background(), target, again); err != nil {
		return fmt.Errorf("replay: republish message %s to %s: %w", sdk.QuoteName(m.ID), sdk.QuoteName(target), err)
	}
	return nil
}
