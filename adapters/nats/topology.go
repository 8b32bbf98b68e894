package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/adapters/internal/topicname"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// A topic is a subject, stored by the stream that captures it: a stream a
// platform team made for it (orders.> for orders.created, say), found by
// subject, or else a stream of its own named after it. Streams per topic
// keep retention, limits and deletion per topic, and keep core NATS
// traffic such as reply subjects out of every stream.

// maxSubject is the longest topic this driver sends. The server reads each
// request's control line (the operation, subject, reply subject and
// sizes) into at most max_control_line bytes, 4096 unless configured,
// and closes the whole connection over a longer one, taking every other
// publish and subscription on it down. The longest line a topic goes
// into is the request creating a group's consumer, which holds the
// stream and consumer names (up to 255 bytes each) beside the topic.
const maxSubject = 3072

// checkSubject refuses a topic that is not a literal NATS subject, or that
// is longer than maxSubject.
func checkSubject(topic string) error {
	return sdk.InvalidName(subjectError(topic))
}

// subjectError is what checkSubject reports, unmarked.
func subjectError(topic string) error {
	if topic == "" {
		return errors.New("nats: topic is empty")
	}
	if len(topic) > maxSubject {
		return fmt.Errorf("nats: topic %s is too long: this driver sends subjects of at most %d bytes, so that every request stays within the server's control line (max_control_line, 4096 bytes by default, and a longer line closes the connection): use a shorter topic",
			sdk.QuoteName(topic), maxSubject)
	}
	if odd := topicname.Unprintable(topic); odd != "" {
		return fmt.Errorf("nats: topic %s holds %s; the server takes such a subject but no stream captures it, so its messages would go nowhere: use printable UTF-8 subjects",
			sdk.QuoteName(topic), odd)
	}
	for _, tok := range strings.Split(topic, ".") {
		// JetStream's client refuses * and > inside a token too, not only as
		// the wildcard tokens themselves.
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return fmt.Errorf("nats: topic %s is not a NATS subject: use dot-separated tokens without spaces, empty tokens or the wildcard characters * and >", sdk.QuoteName(topic))
		}
	}
	return nil
}

// maxObjectName is the longest stream or consumer name JetStream takes.
const maxObjectName = 255

// objectName makes a stream or consumer name from s: names may not hold
// '.', '*', '>', whitespace or path separators, so any other byte than
// letters, digits, '-' and '_' becomes '_', and a hash of s is added when
// one did, so that distinct topics never share a name. A name longer than
// JetStream takes is cut and ends in a 64-bit hash of the whole of s.
func objectName(s string) string {
	name := safeName(s)
	if len(name) <= maxObjectName {
		return name
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s_%016x", name[:maxObjectName-17], h.Sum64())
}

// safeName is s with every byte a JetStream name may not hold replaced,
// and a 32-bit hash of s added when one was.
func safeName(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
			changed = true
		}
	}
	if changed {
		h := fnv.New32a()
		h.Write([]byte(s))
		fmt.Fprintf(&b, "_%08x", h.Sum32())
	}
	return b.String()
}

// stream returns the stream that stores topic, creating one when no stream
// captures it. Found streams are remembered; forget drops one that has
// gone.
func (t *Transport) stream(ctx context.Context, topic string) (jetstream.Stream, error) {
	if s, ok := t.streams.Load(topic); ok {
		return s.(jetstream.Stream), nil
	}
	ctx, cancel := apiContext(ctx)
	defer cancel()
	if err := checkSubject(topic); err != nil {
		return nil, err
	}
	name, err := t.js.StreamNameBySubject(ctx, topic)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		name, err = objectName(topic), nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: look up the stream of %s on %s: %w", sdk.QuoteName(topic), t.s.where(), err)
	}
	s, err := t.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = t.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{topic}, Storage: t.s.storage, Replicas: t.s.Replicas,
			Retention: jetstream.LimitsPolicy, MaxAge: t.s.Retention, MaxMsgs: orUnlimited(t.s.MaxLen),
			Discard: jetstream.DiscardOld,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = t.js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %q for topic %s on %s: %w", name, sdk.QuoteName(topic), t.s.where(), err)
	}
	t.streams.Store(topic, s)
	return s, nil
}

func (t *Transport) forget(topic string) { t.streams.Delete(topic) }

// apiTimeout bounds one JetStream API request. A request sent while the
// cluster elects a leader can go unanswered: bounded, it fails (and is
// retried) instead of holding its caller until the caller's deadline.
const apiTimeout = 5 * time.Second

func apiContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, apiTimeout)
}

func orUnlimited(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// RemoveGroup deletes the group's durable consumer of topic; the stream
// and other groups stay.
func (t *Transport) RemoveGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return errors.New("nats: consumer group is empty; name the group to remove")
	}
	s, err := t.stream(ctx, topic)
	if err != nil {
		return err
	}
	ctx, cancel := apiContext(ctx)
	defer cancel()
	name := objectName(group)
	if subjects := s.CachedInfo().Config.Subjects; len(subjects) != 1 || subjects[0] != topic {
		name = objectName(group + "." + topic)
	}
	if err := s.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("nats: delete consumer %q of group %s on topic %s at %s: %w", name, sdk.QuoteName(group), sdk.QuoteName(topic), t.s.where(), err)
	}
	return nil
}

// consumer returns the group's durable pull consumer on topic's stream,
// creating it when it does not exist. One that exists is used as it is: a
// group's start position and the platform's settings are not changed
// under it.
func (t *Transport) consumer(ctx context.Context, topic, group string) (jetstream.Consumer, error) {
	s, err := t.stream(ctx, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := apiContext(ctx)
	defer cancel()
	name := objectName(group)
	if subjects := s.CachedInfo().Config.Subjects; len(subjects) != 1 || subjects[0] != topic {
		name = objectName(group + "." + topic) // a shared stream: one consumer per group and topic
	}
	c, err := s.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		policy := jetstream.DeliverNewPolicy
		if driver.GroupStartOldest(ctx, t.s.startOldest) {
			policy = jetstream.DeliverAllPolicy
		}
		c, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: topic, AckPolicy: jetstream.AckExplicitPolicy, AckWait: t.s.AckWait,
			MaxAckPending: t.s.MaxAckPending, DeliverPolicy: policy, MaxDeliver: -1,
		})
		if errors.Is(err, jetstream.ErrConsumerExists) {
			c, err = s.Consumer(ctx, name)
		}
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		t.forget(topic)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: consumer %q of group %s on topic %s at %s: %w", name, sdk.QuoteName(group), sdk.QuoteName(topic), t.s.where(), err)
	}
	return c, nil
}
