// Package kafka is the Kafka driver, on IBM/sarama and watermill-kafka.
//
// A topic is a Kafka topic (created on first use with the configured
// partitions, unless create_topics is false) and a consumer group a Kafka
// consumer group. The ordering key is the record key, so messages with one
// key go to one partition and a group sees them in order; different
// partitions are consumed concurrently. Offsets are marked only after the
// handler acks, so a crash or a rebalance redelivers instead of losing.
//
// Publishing goes through one idempotent AsyncProducer (acks from all
// in-sync replicas) that batches concurrent publishes. Consuming uses a
// sarama consumer group per subscription. The wire format is
// watermill-kafka's. TLS and SASL (PLAIN, SCRAM-SHA-256/512) are configured by options.
// See docs/adapters/kafka.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/kafka"
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/msgkit/msgkit/adapters/internal/bridge"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "kafka"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens Kafka transports.
type Driver struct{}

// Open validates cfg and connects to the cluster (one client for the
// producer and topic administration; each subscription has its own).
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	t, err := Driver{}.openWatermill(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return bridge.Transport(t), nil
}

func (Driver) openWatermill(ctx context.Context, cfg sdk.Config) (*Transport, error) {
	s, err := parseSettings(cfg)
	if err != nil {
		return nil, err
	}
	return open(ctx, s)
}

func open(_ context.Context, s settings) (*Transport, error) {
	client, err := sarama.NewClient(s.brokers, s.saramaConfig())
	if err != nil {
		return nil, connectError(s, err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, connectError(s, err)
	}
	t := &Transport{s: s, client: client, admin: admin, topics: map[string]bool{}, subs: map[*Subscriber]struct{}{},
		logger: slog.Default().With("driver", DriverName)}
	if t.pub, err = newPublisher(t, client); err != nil {
		_ = admin.Close()
		return nil, err
	}
	return t, nil
}

func connectError(s settings, err error) error {
	hint := "is Kafka running there, and are the brokers right?"
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		hint = "the cluster refused the SASL credentials; check sasl_user, sasl_password and sasl_mechanism"
	case s.tls == nil:
		hint += " (if the listener uses TLS, set tls: true)"
	}
	return fmt.Errorf("kafka: connect to %s: %w (%s)", s.where(), err, hint)
}

// Transport is an open Kafka transport.
type Transport struct {
	s      settings
	client sarama.Client
	admin  sarama.ClusterAdmin // owns client: closing it closes the client
	pub    *Publisher
	logger *slog.Logger

	topicsMu sync.Mutex
	topics   map[string]bool // topics known to exist

	mu   sync.Mutex
	subs map[*Subscriber]struct{}
}

// Capabilities declares what Kafka guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups:          true,
		Ordering:                sdk.OrderingPerKey, // key -> partition; one message per partition in flight
		DurableGroups:           true,               // committed offsets
		NewGroupsReceiveHistory: t.s.startOldest,
		Persistent:              true, // the log is on the brokers' disks (acks=all)
		RequestReply:            true, // a reply topic per client, deleted on close
		MaxPayloadBytes:         t.s.maxPayload,
	}
}

// Publisher returns the shared batching publisher.
func (t *Transport) Publisher() message.Publisher { return t.pub }

// Subscriber returns a subscriber that consumes as a member of the Kafka
// consumer group named group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("kafka: consumer group is empty; name the group (usually the service name)")
	}
	return t.newSubscriber(group, "")
}

// ReplySubscriber reads the client's reply topic: a one-partition topic
// read without a consumer group (no join, no rebalance), deleted when the
// subscriber closes.
func (t *Transport) ReplySubscriber(topic string) (message.Subscriber, error) {
	if err := t.ensureTopic(topic, 1); err != nil {
		return nil, err
	}
	return t.newSubscriber("", topic)
}

func (t *Transport) newSubscriber(group, replyTopic string) (*Subscriber, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == nil {
		return nil, fmt.Errorf("kafka: transport %w", sdk.ErrClosed)
	}
	s := &Subscriber{t: t, group: group, replyTopic: replyTopic, closing: make(chan struct{})}
	t.subs[s] = struct{}{}
	return s, nil
}

// ensureTopic makes sure topic exists, creating it with partitions when
// create_topics is on, and waits until its partitions have leaders.
func (t *Transport) ensureTopic(topic string, partitions int32) error {
	t.topicsMu.Lock()
	defer t.topicsMu.Unlock()
	if t.topics[topic] {
		return nil
	}
	if t.s.create {
		err := t.admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: t.s.replication}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %q on %s: %w (set create_topics: false to use topics created by an administrator)", topic, t.s.where(), err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := t.client.RefreshMetadata(topic)
		if err == nil {
			if ps, perr := t.client.Partitions(topic); perr == nil && len(ps) > 0 && t.leadersKnown(topic, ps) {
				t.topics[topic] = true
				return nil
			}
		}
		missing := !t.s.create && errors.Is(err, sarama.ErrUnknownTopicOrPartition)
		if missing || time.Now().After(deadline) {
			if !t.s.create {
				return fmt.Errorf("kafka: topic %q is not available on %s and create_topics is false: create it, or set create_topics: true: %w", topic, t.s.where(), err)
			}
			return fmt.Errorf("kafka: topic %q on %s has no partition leaders 15s after creation: %w", topic, t.s.where(), err)
		}
		time.Sleep(wait) // no event announces a topic's leaders; poll metadata, bounded
	}
}

func (t *Transport) leadersKnown(topic string, partitions []int32) bool {
	for _, p := range partitions {
		if _, err := t.client.Leader(topic, p); err != nil {
			return false
		}
	}
	return true
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs != nil {
		delete(t.subs, s)
	}
}

// Close closes every subscriber, flushes the producer and disconnects.
func (t *Transport) Close() error {
	t.mu.Lock()
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	if subs == nil {
		return nil
	}
	var errs []error
	for s := range subs {
		errs = append(errs, s.Close())
	}
	errs = append(errs, t.pub.Close(), t.admin.Close())
	return errors.Join(errs...)
}

var ()
