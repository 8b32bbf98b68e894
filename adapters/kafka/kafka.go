// Package kafka is the Kafka driver, on franz-go (github.com/twmb/franz-go),
// with watermill-kafka's wire format.
//
// A topic is a Kafka topic (created on first use with the configured
// partitions, unless create_topics is false) and a consumer group a Kafka
// consumer group. The ordering key is the record key, so messages with one
// key go to one partition; the delivery engine hands a partition's records
// to handlers one at a time, in order, and different partitions
// concurrently. Offsets are marked only after the handler acks and
// committed every second and when partitions are revoked, so a crash or a
// rebalance redelivers instead of losing.
//
// Publishing goes through one idempotent producer (acks from all in-sync
// replicas) that batches concurrent publishes. Each subscription is a
// franz-go group consumer of its own. TLS and SASL (PLAIN,
// SCRAM-SHA-256/512) are configured by options. See docs/adapters/kafka.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/kafka"
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/lock"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "kafka"

// maxMetadataBytes bounds the header keys and values of one record.
const maxMetadataBytes = 32 << 10

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens Kafka transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := parseSettings(cfg)
	return err
}

// Open validates cfg and connects to the cluster by ctx's deadline (one
// client for the producer and topic administration; each subscription has
// its own).
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	return open(ctx, s)
}

func open(ctx context.Context, s settings) (*Transport, error) {
	client, err := kgo.NewClient(s.producerOptions()...)
	if err != nil {
		return nil, connectError(s, err)
	}
	if err := ping(ctx, client); err != nil {
		client.Close()
		if s.sasl != "" && errors.Is(err, io.EOF) && answersWithoutSASL(ctx, s) {
			return nil, fmt.Errorf("kafka: connect to %s: %w (the listener does not use SASL: it answers without a login; "+
				"remove sasl_mechanism, sasl_user and sasl_password (and user:password@ from the URL), or connect to the cluster's SASL listener)", s.where(), err)
		}
		return nil, connectError(s, err)
	}
	return newTransport(s, client, true), nil
}

// answersWithoutSASL reports whether the cluster answers a client that does
// not log in: a broker closes the connection on a SASL handshake it does
// not expect, which otherwise reads as refused credentials.
func answersWithoutSASL(ctx context.Context, s settings) bool {
	s.sasl = ""
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	client, err := kgo.NewClient(s.clientOptions()...)
	if err != nil {
		return false
	}
	defer client.Close()
	return client.Ping(ctx) == nil
}

// New returns a transport that produces with the caller's own franz-go
// client (its brokers, TLS, SASL, producer settings); each subscription
// consumes with a client made from the same options plus the group's. A
// bad option is a *sdk.ConfigError naming it. Close flushes client and
// leaves it open.
func New(ctx context.Context, client *kgo.Client, o Options) (*Transport, error) {
	if err := sdk.FillOptions(DriverName, &o); err != nil {
		return nil, err
	}
	s, err := newSettings(sdk.Config{}, o)
	if err != nil {
		return nil, err
	}
	s.brokers, _ = client.OptValue(kgo.SeedBrokers).([]string)
	s.base = client.Opts()
	if err := ping(ctx, client); err != nil {
		return nil, connectError(s, err)
	}
	return newTransport(s, client, false), nil
}

func newTransport(s settings, client *kgo.Client, owned bool) *Transport {
	return &Transport{s: s, client: client, ownsClient: owned, logger: slog.Default().With("driver", DriverName)}
}

// ping asks the cluster for its metadata, which also authenticates: a
// refused SASL login or a TLS mismatch fails here rather than on the first
// publish.
func ping(ctx context.Context, client *kgo.Client) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	return client.Ping(ctx)
}

func connectError(s settings, err error) error {
	if e := sdk.ExplainTLS(err, s.tls); e != err {
		return fmt.Errorf("kafka: connect to %s: %w", s.where(), e)
	}
	hint := "is Kafka running there, and are the brokers right?"
	var ke *kerr.Error
	var firstRead *kgo.ErrFirstReadEOF
	switch {
	case errors.As(err, &ke) && (ke.Code == kerr.SaslAuthenticationFailed.Code || ke.Code == kerr.IllegalSaslState.Code):
		hint = "the cluster refused the SASL credentials; check sasl_user, sasl_password and sasl_mechanism"
	case s.sasl != "" && errors.Is(err, io.EOF):
		hint = "the broker closed the connection during the SASL login: the credentials or the mechanism were refused, or the listener does not use TLS as configured"
	case s.sasl == "" && errors.As(err, &firstRead):
		hint = "the broker closed the connection at the first request: its listener requires a login (set sasl_mechanism, sasl_user and sasl_password)"
		if s.tls == nil {
			hint += " or TLS (set tls: true)"
		}
	case s.tls == nil:
		hint += " (if the listener uses TLS, set tls: true)"
	}
	return fmt.Errorf("kafka: connect to %s: %w (%s)", s.where(), err, hint)
}

// Transport is an open Kafka transport.
type Transport struct {
	s          settings
	client     *kgo.Client // producing and topic administration
	ownsClient bool        // false: the caller's (New), left open by Close
	logger     *slog.Logger

	topicsMu lock.Mutex // held while a topic is checked or created
	known    sync.Map   // topic -> struct{}: topics known to exist; read without topicsMu on every publish

	subs driver.Subscriptions[*subscription]
}

// Capabilities declares what Kafka guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:          true,
		Ordering:                sdk.OrderingPerKey, // key -> partition; one record per partition in flight
		DurableGroups:           true,               // committed offsets
		NewGroupsReceiveHistory: t.s.startOldest,
		ChoosesGroupStart:       true,
		Persistent:              true, // the log is on the brokers' disks (acks=all)
		RequestReply:            true, // a reply topic per client, deleted on close
		RemovesGroups:           true,
		MaxPayloadBytes:         t.s.MaxPayloadBytes,
		// Headers travel in the record beside the payload: the producer's
		// batch limit leaves 64 KiB over max_payload_bytes, and the
		// broker's message.max.bytes (1 MiB) keeps room for this much.
		MaxMetadataBytes: maxMetadataBytes,
	}
}

// SendOptions: concurrent publishes to a topic share ProduceSync calls,
// one call at a time, and the next call waits briefly for the publishers
// the last one answered. franz-go batches the records of concurrent calls
// too, but each call costs a wait and a goroutine of its own, and records
// from one-message calls reach the broker in small requests: 64
// goroutines publishing one message at a time sent 8 records a produce
// request behind a 20 ms round trip, and 64 when they share calls, at
// 1.4 times the rate (TestConcurrentPublishesShareProduceRequests,
// docs/benchmarks.md). Without the wait, the publishers a call released
// came back one by one behind the next call and split into a call of one
// and a call of the rest. Two calls at a time were no faster: the
// publishers settled into two calls of half each. A publish is never
// split, so its messages keep their order.
func (t *Transport) SendOptions() driver.SendOptions {
	return driver.SendOptions{Timeout: t.s.PublishTimeout, Coalesce: true, MaxInFlight: 1, FillCalls: true}
}

// SendBatch produces msgs and returns once the cluster acknowledged each
// (acks from all in-sync replicas). A record that failed fails alone; one
// whose topic went missing makes the next attempt check (and, with
// create_topics, create) the topic again.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	if err := t.ensureTopic(ctx, topic, t.s.Partitions); err != nil {
		return err
	}
	if refused := reservedIDs(topic, msgs); refused != nil {
		return t.sendSome(ctx, topic, msgs, refused)
	}
	var errs driver.BatchError
	records := toRecords
	if t.s.WireFormat == "cloudevents" {
		ce, refused := toCloudEvents(topic, msgs)
		for i, err := range refused {
			if err != nil {
				if errs == nil {
					errs = make(driver.BatchError, len(msgs))
				}
				errs[i] = fmt.Errorf("kafka: publish to %s: %w", sdk.QuoteName(topic), err)
			}
		}
		if errs != nil {
			return t.sendSome(ctx, topic, msgs, errs)
		}
		records = func(string, []*driver.Message) []*kgo.Record { return ce }
	}
	recs := records(topic, msgs)
	results, err := t.produce(ctx, recs)
	if err != nil {
		return fmt.Errorf("kafka: publish to %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	var index map[*kgo.Record]int
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		if errs == nil {
			errs = make(driver.BatchError, len(msgs))
			// Results come in the order the cluster answered, which across
			// partitions is not the order of msgs.
			index = make(map[*kgo.Record]int, len(recs))
			for i, rec := range recs {
				index[rec] = i
			}
		}
		i, ok := index[r.Record]
		if !ok {
			return fmt.Errorf("kafka: publish to %s on %s: the producer reported a record it was not given: %w", sdk.QuoteName(topic), t.s.where(), r.Err)
		}
		if errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			// The cluster lost the topic: the producer drops what it knew of
			// it (partitions, sequence numbers) and the next attempt checks
			// the topic again, creating it with create_topics.
			t.client.PurgeTopicsFromProducing(topic)
			t.forgetTopic(topic)
		}
		errs[i] = fmt.Errorf("kafka: publish to %s on %s: %w", sdk.QuoteName(topic), t.s.where(), r.Err)
	}
	if errs == nil {
		return nil
	}
	return errs
}

// produce produces records and returns each one's outcome, or an error
// when ctx ends first. The idempotent producer does not give up a record
// it has sent until the cluster answers for it, whatever its context says:
// against a broker that has stopped answering, ProduceSync would wait
// until the connection is found dead. So it runs on a goroutine of its
// own, which finishes on its own; a record not acknowledged by ctx's end
// may still be written (the publish failed; sending it again may make a
// duplicate, never a loss).
func (t *Transport) produce(ctx context.Context, records []*kgo.Record) (kgo.ProduceResults, error) {
	done := make(chan kgo.ProduceResults, 1)
	go func() { done <- t.client.ProduceSync(ctx, records...) }()
	select {
	case results := <-done:
		return results, nil
	case <-ctx.Done():
		select {
		case results := <-done:
			return results, nil
		default:
		}
		return nil, fmt.Errorf("%d record(s) not acknowledged by the deadline (a record already sent may still be written): %w", len(records), ctx.Err())
	}
}

// sendSome sends the messages refused has no error for; the refused fail
// alone, at once. It returns refused with the others' outcomes added.
func (t *Transport) sendSome(ctx context.Context, topic string, msgs []*driver.Message, refused driver.BatchError) error {
	var keep []*driver.Message
	for i, m := range msgs {
		if refused[i] == nil {
			keep = append(keep, m)
		}
	}
	if len(keep) == 0 {
		return refused
	}
	if err := t.SendBatch(ctx, topic, keep); err != nil {
		var be driver.BatchError
		if !errors.As(err, &be) {
			return err
		}
		j := 0
		for i := range msgs {
			if refused[i] == nil {
				refused[i] = be[j]
				j++
			}
		}
	}
	return refused
}

// IsRetryable reports whether err is transient: a connection lost, a
// leader moving, a topic that went missing (checked again before the next
// attempt). franz-go already retries what Kafka marks retryable within a
// produce request.
func (t *Transport) IsRetryable(err error) bool {
	return kerr.IsRetriable(err) || errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kgo.ErrRecordTimeout) ||
		isNetError(err)
}

// OpenSubscription makes sure topic exists and returns a member of the
// group consuming it.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("kafka: consumer group is empty; name the group (usually the service name)")
	}
	if t.subs.Closed() {
		return nil, fmt.Errorf("kafka: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	if err := t.ensureTopic(ctx, topic, t.s.Partitions); err != nil {
		return nil, err
	}
	oldest := driver.GroupStartOldest(ctx, t.s.startOldest)
	if !oldest {
		if err := t.pinStart(ctx, topic, group); err != nil {
			return nil, err
		}
	}
	return t.subscribe(topic, group, oldest)
}

// OpenReplySubscription reads the client's reply topic: a one-partition
// topic read without a consumer group (no join, no rebalance), deleted when
// the subscription closes.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("kafka: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	if err := t.ensureTopic(ctx, topic, 1); err != nil {
		return nil, err
	}
	return t.subscribe(topic, "", true)
}

// As reaches the franz-go client the transport produces with (**kgo.Client).
func (t *Transport) As(target any) bool {
	if p, ok := target.(**kgo.Client); ok {
		*p = t.client
		return true
	}
	return false
}

// Close closes every subscription (their members leave the group) and the
// producer, which first sends what it buffered.
func (t *Transport) Close() error {
	first, err := t.subs.Close()
	if !first {
		return nil
	}
	errs := []error{err}
	ctx, cancel := context.WithTimeout(context.Background(), t.s.PublishTimeout)
	defer cancel()
	if err := t.client.Flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kafka: flush the producer on close: %w", err))
	}
	if t.ownsClient {
		t.client.Close()
	}
	return errors.Join(errs...)
}

var _ driver.Transport = (*Transport)(nil)
