// Package sqs is the Amazon SQS driver, on aws-sdk-go-v2.
//
// A topic is a queue (named after the topic, created on first use unless
// create is false). SQS has no consumer groups: every subscriber of a topic
// competes for its messages, whatever group it names, so the driver
// declares no ConsumerGroups; use the sns driver for fan-out to groups.
// With fifo: true the queues are FIFO queues, the ordering key is the
// MessageGroupId and the message id the deduplication id, and the driver
// declares per-key ordering.
//
// Receiving long-polls for ten messages at a time, acks are deleted in
// batches, publishing sends batches of up to ten, and a handler that runs
// long keeps its message invisible. Metadata beyond SQS's ten attributes,
// or with names SQS refuses, is packed into one attribute; binary payloads
// travel base64-encoded. See docs/adapters/sqs.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/sqs"
package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/adapters/internal/awsq"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "sqs"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens SQS transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := awsq.ParseSettings(cfg, DriverName)
	return err
}

// Open validates cfg, loads the AWS configuration and checks, by ctx's
// deadline, that the endpoint answers and takes the credentials (one
// ListQueues call; a policy that does not grant it passes). Queues are
// created or looked up on first use.
func (Driver) Open(ctx context.Context, cfg sdk.Config) (driver.Transport, error) {
	s, err := awsq.ParseSettings(cfg, DriverName)
	if err != nil {
		return nil, err
	}
	ac, closeIdle, err := s.AWSConfig(ctx)
	if err != nil {
		return nil, err
	}
	t := newTransport(ac, s, closeIdle)
	if err := s.CheckEndpoint(ctx, t.queues.Where, func(ctx context.Context) error {
		in := &awssqs.ListQueuesInput{MaxResults: aws.Int32(1)}
		if s.Prefix != "" {
			in.QueueNamePrefix = aws.String(s.Prefix)
		}
		_, err := t.sqs.ListQueues(ctx, in)
		return err
	}); err != nil {
		closeIdle()
		return nil, err
	}
	return t, nil
}

// Options tune an SQS transport: see awsq.Options for each field.
type Options = awsq.Options

// New returns a transport on the caller's own AWS configuration (its
// region, credentials chain, HTTP client, retryer). A bad option is a
// *sdk.ConfigError naming it.
func New(ac aws.Config, o Options) (*Transport, error) {
	s, err := awsq.NewSettings(o, DriverName)
	if err != nil {
		return nil, err
	}
	return newTransport(ac, s, func() {}), nil
}

func newTransport(ac aws.Config, s awsq.Settings, closeIdle func()) *Transport {
	client := NewClient(ac, s)
	where := s.Where(ac.Region)
	t := &Transport{s: s, sqs: client, closeIdle: closeIdle, logger: slog.Default().With("driver", DriverName)}
	t.claims = &awsq.PublishClaims{Logger: t.logger, Grant: "sqs:ListQueueTags and sqs:TagQueue"}
	t.queues = &awsq.Queues{SQS: client, S: s, Where: where}
	t.sender = &awsq.Sender{S: s, Resolve: t.queueURL, Send: SendBatch(client, s.FIFO, where), Forget: t.forget}
	return t
}

// forget drops what the transport knows of topic's queue, found gone.
func (t *Transport) forget(ctx context.Context, topic string) error {
	t.claims.Forget(topic)
	return t.queues.Forget(ctx, awsq.QueueName(t.s.Prefix+topic, "", t.s.FIFO))
}

// NewClient builds the SQS client for s (the endpoint, when set, replaces
// AWS's). The SNS driver uses it for its queues.
func NewClient(ac aws.Config, s awsq.Settings) *awssqs.Client {
	return awssqs.NewFromConfig(ac, func(o *awssqs.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	})
}

// SendBatch returns the function that sends a batch with SendMessageBatch.
func SendBatch(client *awssqs.Client, fifo bool, where string) awsq.SendFunc {
	return func(ctx context.Context, url string, batch []awsq.Encoded) []error {
		entries := make([]types.SendMessageBatchRequestEntry, len(batch))
		for i, e := range batch {
			entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(awsq.BatchIDs[i]), MessageBody: aws.String(e.Body),
				MessageAttributes: Attributes(e.Attributes)}
			if fifo {
				group := e.OrderKey
				if group == "" {
					group = e.ID // no key: no order to keep, spread over groups
				}
				entries[i].MessageGroupId = aws.String(group)
				entries[i].MessageDeduplicationId = aws.String(dedupID(e.ID))
			}
		}
		out, err := client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil {
			err = fmt.Errorf("SendMessageBatch on %s: %w", where, err)
		}
		var ok []string
		failed := map[string]string{}
		if out != nil {
			for _, e := range out.Successful {
				ok = append(ok, aws.ToString(e.Id))
			}
			for _, e := range out.Failed {
				failed[aws.ToString(e.Id)] = fmt.Sprintf("SQS refused the message: %s: %s", aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
		return awsq.BatchResult(len(batch), err, ok, failed)
	}
}

// dedupID fits the message id into SQS's 128-character deduplication id.
func dedupID(id string) string {
	if len(id) <= 128 {
		return id
	}
	return id[:128]
}

// Attributes converts String attributes to SQS's type.
func Attributes(attrs map[string]string) map[string]types.MessageAttributeValue {
	out := make(map[string]types.MessageAttributeValue, len(attrs))
	for k, v := range attrs {
		out[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return out
}

// Transport is an open SQS transport.
type Transport struct {
	s      awsq.Settings
	sqs    *awssqs.Client
	queues *awsq.Queues
	claims *awsq.PublishClaims
	sender *awsq.Sender
	logger *slog.Logger
	// closeIdle drops the idle HTTP connections on Close.
	closeIdle func()

	subs awsq.Subscriptions
}

// Capabilities declares what SQS guarantees under this configuration.
func (t *Transport) Capabilities() sdk.Capabilities {
	ordering := sdk.OrderingNone
	if t.s.FIFO {
		ordering = sdk.OrderingPerKey
	}
	return sdk.Capabilities{
		ConsumerGroups: false, // one queue per topic: subscribers compete, whatever their group
		Ordering:       ordering,
		DurableGroups:  true, // the queue keeps messages while nobody reads
		// Subscribers read the topic's queue, which holds what was published
		// before they first subscribed.
		NewGroupsReceiveHistory: true,
		Persistent:              true,
		RequestReply:            true, // a reply queue per client, deleted on close
		MaxPayloadBytes:         awsq.MaxPayloadBytes,
		MaxMetadataBytes:        awsq.MaxMetadataBytes,
	}
}

// queueURL returns the URL of the queue a publish to topic goes to. The
// first publish to each topic claims the queue's topic tag, so that a topic
// mapped to the queue of another (orders-created, orders.created) is
// refused instead of delivered to the other's consumers.
func (t *Transport) queueURL(ctx context.Context, topic string) (string, error) {
	q, err := t.queues.Ensure(ctx, awsq.QueueName(t.s.Prefix+topic, "", t.s.FIFO))
	if err != nil {
		return "", err
	}
	if err := t.claims.Check(ctx, topic, awsq.QueueTags(t.sqs, q)); err != nil {
		return "", t.claimError(q, topic, err)
	}
	return q.URL, nil
}

// SendOptions: batches of ten, concurrent publishes coalesced.
func (t *Transport) SendOptions() driver.SendOptions { return t.sender.SendOptions() }

// SendBatch sends msgs to the topic's queue with SendMessageBatch.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	return t.sender.SendBatch(ctx, topic, msgs)
}

// IsRetryable is true for a call that got no answer (awsq.Transient), so
// that a publish waits for an endpoint that is down for a while until its
// deadline; the AWS SDK has already retried the answers worth retrying
// (throttling, server errors) before it returns one.
func (t *Transport) IsRetryable(err error) bool { return awsq.Transient(err) }

// OpenSubscription reads the topic's queue (created on first use unless
// create is false). SQS has no groups: group only names the subscriber.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("sqs: consumer group is empty; name the group (usually the service name)")
	}
	if t.subs.Closed() {
		return nil, fmt.Errorf("sqs: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	q, err := t.subscriptionQueue(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	return t.subs.Track(&awsq.Subscription{SQS: t.sqs, S: t.s, Logger: t.logger, Q: q,
		Recover: t.recoverQueue(topic, func(ctx context.Context) (awsq.Queue, error) { return t.subscriptionQueue(ctx, topic, group) })}, nil)
}

// recoverQueue is the Recover of a subscription to topic's queue: it
// forgets the queue, then finds (or creates) it with find, as subscribing
// did.
func (t *Transport) recoverQueue(topic string, find func(context.Context) (awsq.Queue, error)) func(context.Context) (awsq.Queue, error) {
	return func(ctx context.Context) (awsq.Queue, error) {
		if err := t.forget(ctx, topic); err != nil {
			return awsq.Queue{}, err
		}
		return find(ctx)
	}
}

// subscriptionQueue returns topic's queue, created unless create is false,
// claimed for topic and group.
func (t *Transport) subscriptionQueue(ctx context.Context, topic, group string) (awsq.Queue, error) {
	q, err := t.queues.Ensure(ctx, awsq.QueueName(t.s.Prefix+topic, "", t.s.FIFO))
	if err != nil {
		return awsq.Queue{}, err
	}
	if err := t.claimQueue(ctx, q, topic, group); err != nil {
		return awsq.Queue{}, err
	}
	return q, nil
}

// claimQueue records the topic and group that consume the topic's queue
// (queue tags) and refuses another: SQS has no consumer groups, so a
// second group would silently take part of the first one's messages, and
// a second topic mapped to the same queue name would share its messages.
func (t *Transport) claimQueue(ctx context.Context, q awsq.Queue, topic, group string) error {
	err := awsq.Claim(ctx, t.sqs, q, awsq.Tag{Key: awsq.TopicTag, Name: topic}, awsq.Tag{Key: awsq.GroupTag, Name: group})
	var conflict *awsq.ClaimConflict
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &conflict) || conflict.Key == awsq.TopicTag:
		return t.claimError(q, topic, err)
	default:
		return sdk.InvalidName(fmt.Errorf("sqs: topic %s is consumed by group %s (tag %s on queue %q), not %s: SQS has no consumer groups, so a second group would take part of the first one's messages, not get its own copy. Use the sns driver to give each group every message, or subscribe with group %s; to hand the queue to another group, remove the tag",
			sdk.QuoteName(topic), sdk.QuoteName(conflict.Has), awsq.GroupTag, q.Name, sdk.QuoteName(group), sdk.QuoteName(conflict.Has)))
	}
}

// claimError explains a failed claim of the topic tag of q, the queue
// topic maps to.
func (t *Transport) claimError(q awsq.Queue, topic string, err error) error {
	var conflict *awsq.ClaimConflict
	if !errors.As(err, &conflict) {
		return fmt.Errorf("sqs: %w", err)
	}
	return sdk.InvalidName(fmt.Errorf("sqs: topic %s maps to queue %q, which holds the messages of topic %s (tag %s): queue names keep only letters, digits, '-' and '_', so the two topics would share one queue. Rename one of them",
		sdk.QuoteName(topic), q.Name, sdk.QuoteName(conflict.Has), awsq.TopicTag))
}

// OpenReplySubscription reads the client's reply queue and deletes it on
// close.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	if t.subs.Closed() {
		return nil, fmt.Errorf("sqs: subscribe to %s: transport %w", sdk.QuoteName(topic), driver.ErrClosed)
	}
	name := awsq.QueueName(t.s.Prefix+topic, "", t.s.FIFO)
	q, err := t.queues.Ensure(ctx, name)
	if err != nil {
		return nil, err
	}
	sub := &awsq.Subscription{SQS: t.sqs, S: t.s, Logger: t.logger, Q: q,
		Recover: t.recoverQueue(topic, func(ctx context.Context) (awsq.Queue, error) { return t.queues.Ensure(ctx, name) })}
	return t.subs.Track(sub, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), t.s.PublishTimeout)
		defer cancel()
		return t.queues.Delete(ctx, sub.Queue())
	})
}

// RemoveGroup is not supported: SQS has no consumer groups, and the
// topic's queue is the topic itself, not one group's copy of it.
func (t *Transport) RemoveGroup(context.Context, string, string) error {
	return fmt.Errorf("sqs: a topic is one queue, shared by whoever consumes it; there is no group to remove (delete the queue to remove the topic): %w", errors.ErrUnsupported)
}

// As reaches the SQS client (**sqs.Client).
func (t *Transport) As(target any) bool {
	if p, ok := target.(**awssqs.Client); ok {
		*p = t.sqs
		return true
	}
	return false
}

// Close closes every subscription.
func (t *Transport) Close() error {
	first, err := t.subs.Close()
	if !first {
		return nil
	}
	t.closeIdle()
	return err
}

// QueueName is the queue a topic maps to under cfg-like settings: for
// tooling and tests that need to find the queue.
func QueueName(prefix, topic string, fifo bool) string {
	return awsq.QueueName(prefix+topic, "", fifo)
}

var _ driver.Transport = (*Transport)(nil)
