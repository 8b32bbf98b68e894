package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/msgkit/msgkit/sdk"
)

// ensureTopic makes sure topic exists, creating it with partitions when
// create_topics is on, and waits until its partitions have leaders; by
// ctx's deadline, or 15s.
func (t *Transport) ensureTopic(ctx context.Context, topic string, partitions int32) error {
	if _, ok := t.known.Load(topic); ok {
		return nil // every publish: no lock for concurrent publishers to queue on
	}
	if err := t.topicsMu.Lock(ctx); err != nil {
		return fmt.Errorf("kafka: topic %s: waiting for another call checking or creating a topic on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	defer t.topicsMu.Unlock()
	if _, ok := t.known.Load(topic); ok {
		return nil
	}
	if err := checkTopicName(topic); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if !t.s.NoCreateTopics {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, t.s.ReplicationFactor
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 15000
		resp, err := req.RequestWith(ctx, t.client)
		if err == nil && len(resp.Topics) == 1 {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s on %s: %w (set create_topics: false to use topics created by an administrator)", sdk.QuoteName(topic), t.s.where(), err)
		}
	}
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := t.leadersKnown(ctx, topic)
		if err == nil {
			t.known.Store(topic, struct{}{})
			return nil
		}
		if t.s.NoCreateTopics && errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("kafka: topic %s does not exist on %s and create_topics is false: create it, or set create_topics: true", sdk.QuoteName(topic), t.s.where())
		}
		select {
		case <-ctx.Done():
			if t.s.NoCreateTopics {
				return fmt.Errorf("kafka: topic %s is not available on %s and create_topics is false: create it, or set create_topics: true: %w", sdk.QuoteName(topic), t.s.where(), err)
			}
			return fmt.Errorf("kafka: topic %s on %s has no partition leaders yet (%w); gave up: %w", sdk.QuoteName(topic), t.s.where(), err, ctx.Err())
		case <-time.After(wait): // no event announces a topic's leaders; poll metadata, bounded
		}
	}
}

// leadersKnown asks for the topic's metadata; nil when every partition has
// a leader.
func (t *Transport) leadersKnown(ctx context.Context, topic string) error {
	req := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, mt)
	resp, err := req.RequestWith(ctx, t.client)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("metadata for %d topics, asked for one", len(resp.Topics))
	}
	rt := resp.Topics[0]
	if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
		return err
	}
	if len(rt.Partitions) == 0 {
		return errors.New("the topic has no partitions yet")
	}
	for _, p := range rt.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
			return err
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader yet", p.Partition)
		}
	}
	return nil
}

// forgetTopic makes the next publish check the topic again (it went missing).
func (t *Transport) forgetTopic(topic string) {
	t.known.Delete(topic)
}

// deleteTopic removes a reply topic.
func (t *Transport) deleteTopic(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, dt)
	req.TopicNames = append(req.TopicNames, topic)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(ctx, t.client)
	if err == nil && len(resp.Topics) == 1 {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: delete reply topic %s: %w", sdk.QuoteName(topic), err)
	}
	t.forgetTopic(topic)
	return nil
}

// RemoveGroup deletes the consumer group with its committed offsets
// (DeleteGroups). Kafka refuses while the group has members; the topic
// stays. A Kafka group spans topics: this removes it from all of them.
func (t *Transport) RemoveGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return errors.New("kafka: consumer group is empty; name the group to remove")
	}
	ctx, cancel := context.WithTimeout(ctx, t.s.PublishTimeout)
	defer cancel()
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(ctx, t.client)
	if err == nil && len(resp.Groups) == 1 {
		err = kerr.ErrorForCode(resp.Groups[0].ErrorCode)
	}
	switch {
	case err == nil, errors.Is(err, kerr.GroupIDNotFound):
		return nil
	case errors.Is(err, kerr.NonEmptyGroup):
		return fmt.Errorf("kafka: remove group %s (topic %s): it still has members; stop them first: %w", sdk.QuoteName(group), sdk.QuoteName(topic), err)
	}
	return fmt.Errorf("kafka: remove group %s (topic %s): %w", sdk.QuoteName(group), sdk.QuoteName(topic), err)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// pinStart makes a new group (initial_offset: newest) start where the topic
// ends now, by committing the end offsets for it, so that what is
// published once Subscribe or EnsureGroup has returned reaches the group,
// even before a member has joined or after one closed without joining. A
// group that has committed offsets on the topic, or that has members
// committing, is left alone.
func (t *Transport) pinStart(ctx context.Context, topic, group string) error {
	adm := kadm.NewClient(t.client)
	fetched, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = fetched.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) { // some brokers' answer for a group never seen
		fetched, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("kafka: read the committed offsets of group %s on %s at %s: %w", sdk.QuoteName(group), sdk.QuoteName(topic), t.s.where(), err)
	}
	committed := false
	fetched.Each(func(o kadm.OffsetResponse) { committed = committed || o.At >= 0 })
	if committed {
		return nil
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("kafka: list the end offsets of %s at %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	var offsets kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) {
		offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
	})
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
		return nil // members are in the group already: their own commits decide
	}
	if err != nil {
		return fmt.Errorf("kafka: start group %s at the end of %s at %s: %w", sdk.QuoteName(group), sdk.QuoteName(topic), t.s.where(), err)
	}
	return nil
}

// maxTopicName is the longest topic name Kafka takes.
const maxTopicName = 249

// checkTopicName refuses a topic Kafka would refuse, before any request:
// a broker answers INVALID_TOPIC_EXCEPTION to a create, and a consumer of
// such a topic would otherwise only fail on every fetch.
func checkTopicName(topic string) error { return sdk.InvalidName(topicNameError(topic)) }

// topicNameError is what checkTopicName reports, unmarked.
func topicNameError(topic string) error {
	const rule = "a Kafka topic name is 1 to 249 letters, digits, '.', '_' or '-', and not . or .."
	switch {
	case topic == "" || topic == "." || topic == "..":
		return fmt.Errorf("kafka: topic %s is not a Kafka topic name: %s", sdk.QuoteName(topic), rule)
	case len(topic) > maxTopicName:
		return fmt.Errorf("kafka: topic %s is too long: %s", sdk.QuoteName(topic), rule)
	}
	for i, c := range topic {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("kafka: topic %s holds %q at byte %d: %s", sdk.QuoteName(topic), c, i, rule)
		}
	}
	return nil
}
