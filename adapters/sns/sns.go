// Package sns is the Amazon SNS driver, on aws-sdk-go-v2: SNS topics for
// fan-out, an SQS queue per consumer group.
//
// A topic is an SNS topic (created on first use unless create is false).
// Each consumer group is an SQS queue named <topic>-<group>, subscribed to
// the topic with raw message delivery, so every group receives every
// message, the members of a group compete for it, and message attributes
// arrive as SQS message attributes. The queue's access policy lets only
// that topic send to it. Publishing sends batches of up to ten
// (PublishBatch); consuming is the sqs driver's: long polling for ten,
// batched deletes, visibility extended while a handler runs. Metadata
// beyond ten attributes is packed into one; binary payloads travel
// base64-encoded. See docs/adapters/sns.md.
//
//	import _ "github.com/msgkit/msgkit/adapters/sns"
package sns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/msgkit/msgkit/adapters/internal/awsq"
	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/lock"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// DriverName is the name the driver registers under.
const DriverName = "sns"

func init() { sdk.Register(DriverName, Driver{}) }

// Driver opens SNS transports.
type Driver struct{}

// CheckConfig validates cfg as Open does, without connecting.
func (Driver) CheckConfig(cfg sdk.Config) error {
	_, err := awsq.ParseSettings(cfg, DriverName)
	return err
}

// Open validates cfg, loads the AWS configuration and checks, by ctx's
// deadline, that the endpoint answers and takes the credentials (one
// ListTopics call; a policy that does not grant it passes). Topics, queues
// and subscriptions are created or looked up on first use.
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
	if err := s.CheckEndpoint(ctx, t.where, func(ctx context.Context) error {
		_, err := t.sns.ListTopics(ctx, &awssns.ListTopicsInput{})
		return err
	}); err != nil {
		closeIdle()
		return nil, err
	}
	return t, nil
}

// Options tune an SNS transport: see awsq.Options for each field (FIFO
// topics are not supported).
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
	where := s.Where(ac.Region)
	snsClient := awssns.NewFromConfig(ac, func(o *awssns.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	})
	sqsClient := sqs.NewClient(ac, s)
	t := &Transport{s: s, sns: snsClient, sqs: sqsClient, where: where, closeIdle: closeIdle,
		logger: slog.Default().With("driver", DriverName), topics: map[string]string{},
		subscribed: map[string]string{}}
	t.queues = &awsq.Queues{SQS: sqsClient, S: s, Where: where}
	t.claims = &awsq.PublishClaims{Logger: t.logger, Grant: "sns:ListTagsForResource and sns:TagResource"}
	t.sender = &awsq.Sender{S: s, Resolve: t.topicARN, Send: t.publishBatch, Forget: t.forgetTopic}
	return t
}

// Transport is an open SNS transport.
type Transport struct {
	s         awsq.Settings
	sns       *awssns.Client
	sqs       *awssqs.Client
	where     string
	queues    *awsq.Queues
	sender    *awsq.Sender
	claims    *awsq.PublishClaims
	logger    *slog.Logger
	closeIdle func() // drops the idle HTTP connections on Close

	topicsMu   lock.Mutex        // held while a topic is created or a queue subscribed
	topics     map[string]string // topic name -> ARN
	subscribed map[string]string // queue ARN -> subscription ARN

	subs awsq.Subscriptions
}

// Capabilities declares what SNS with SQS queues guarantees.
func (t *Transport) Capabilities() sdk.Capabilities {
	return sdk.Capabilities{
		ConsumerGroups: true, // a queue per group, each subscribed to the topic
		Ordering:       sdk.OrderingNone,
		DurableGroups:  true, // the group's queue keeps messages while nobody reads
		// A group's queue receives what is published after it was
		// subscribed; SNS keeps no history.
		NewGroupsReceiveHistory: false,
		Persistent:              true,
		RequestReply:            true, // a reply topic and queue per client, deleted on close
		RemovesGroups:           true, // the group's queue and its subscription
		MaxPayloadBytes:         awsq.MaxPayloadBytes,
		MaxMetadataBytes:        awsq.MaxMetadataBytes,
	}
}

// SendOptions: batches of ten, concurrent publishes coalesced.
func (t *Transport) SendOptions() driver.SendOptions { return t.sender.SendOptions() }

// SendBatch publishes msgs to the topic's SNS topic with PublishBatch.
func (t *Transport) SendBatch(ctx context.Context, topic string, msgs []*driver.Message) error {
	return t.sender.SendBatch(ctx, topic, msgs)
}

// IsRetryable is true for a call that got no answer (awsq.Transient), so
// that a publish waits for an endpoint that is down for a while until its
// deadline; the AWS SDK has already retried the answers worth retrying
// (throttling, server errors) before it returns one.
func (t *Transport) IsRetryable(err error) bool { return awsq.Transient(err) }

// OpenSubscription reads the group's queue, created and subscribed to the
// topic on first use: every group receives every message, and the members
// of a group compete for it.
func (t *Transport) OpenSubscription(ctx context.Context, topic, group string) (driver.Subscription, error) {
	if group == "" {
		return nil, errors.New("sns: consumer group is empty; name the group (usually the service name)")
	}
	q, err := t.groupQueue(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	return t.subs.Track(&awsq.Subscription{SQS: t.sqs, S: t.s, Logger: t.logger, Q: q,
		Recover: t.recoverGroup(topic, group, q)}, nil)
}

// forgetTopic drops what the transport knows of topic's SNS topic, found
// gone.
func (t *Transport) forgetTopic(ctx context.Context, topic string) error {
	name := TopicName(t.s.Prefix, topic)
	if err := t.topicsMu.Lock(ctx); err != nil {
		return fmt.Errorf("%s: topic %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, name, err)
	}
	delete(t.topics, name)
	t.topicsMu.Unlock()
	t.claims.Forget(topic)
	return nil
}

// recoverGroup returns the Recover of a subscription to the group queue
// gone of topic: it forgets the topic, the queue and its subscription to
// the topic, then sets them up as subscribing did. A queue deleted under
// a running subscription (or an emulator that restarted empty) is so
// created and subscribed again; what was published meanwhile had no queue
// to go to.
func (t *Transport) recoverGroup(topic, group string, gone awsq.Queue) func(context.Context) (awsq.Queue, error) {
	return func(ctx context.Context) (awsq.Queue, error) {
		if err := t.forgetTopic(ctx, topic); err != nil {
			return awsq.Queue{}, err
		}
		if err := t.queues.Forget(ctx, gone.Name); err != nil {
			return awsq.Queue{}, err
		}
		if err := t.topicsMu.Lock(ctx); err != nil {
			return awsq.Queue{}, fmt.Errorf("%s: queue %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, gone.Name, err)
		}
		delete(t.subscribed, gone.ARN)
		t.topicsMu.Unlock()
		return t.groupQueue(ctx, topic, group)
	}
}

// OpenReplySubscription reads the client's reply topic through a queue of
// its own; topic, queue and subscription are deleted when it closes.
func (t *Transport) OpenReplySubscription(ctx context.Context, topic string) (driver.Subscription, error) {
	q, err := t.groupQueue(ctx, topic, "")
	if err != nil {
		return nil, err
	}
	sub := &awsq.Subscription{SQS: t.sqs, S: t.s, Logger: t.logger, Q: q, Recover: t.recoverGroup(topic, "", q)}
	return t.subs.Track(sub, func() error {
		return t.deleteReplyTopic(topic, sub.Queue())
	})
}

// As reaches the SNS client (**sns.Client) and the SQS client of the
// group queues (**sqs.Client).
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **awssns.Client:
		*p = t.sns
	case **awssqs.Client:
		*p = t.sqs
	default:
		return false
	}
	return true
}

// topicARN returns the ARN of the topic's SNS topic, creating it when
// create is on (CreateTopic is idempotent) and looking it up otherwise.
// The first use of each topic, to publish or subscribe, claims the SNS
// topic's topic tag, so that a topic mapped to the SNS topic of another
// (orders-created, orders.created) is refused instead of delivered to the
// other's groups.
func (t *Transport) topicARN(ctx context.Context, topic string) (string, error) {
	arn, err := t.findOrCreateTopic(ctx, topic)
	if err != nil {
		return "", err
	}
	name := TopicName(t.s.Prefix, topic)
	err = t.claims.Check(ctx, topic, t.topicTags(name, arn))
	var conflict *awsq.ClaimConflict
	switch {
	case errors.As(err, &conflict):
		return "", sdk.InvalidName(fmt.Errorf("sns: topic %s maps to SNS topic %q, which carries the messages of topic %s (tag %s): SNS topic names keep only letters, digits, '-' and '_', so the two topics would share one SNS topic. Rename one of them",
			sdk.QuoteName(topic), name, sdk.QuoteName(conflict.Has), awsq.TopicTag))
	case err != nil:
		return "", fmt.Errorf("%s: %w", t.where, err)
	}
	return arn, nil
}

// topicTags is the TagStore of the SNS topic called name.
func (t *Transport) topicTags(name, arn string) awsq.TagStore {
	return awsq.TagStore{
		Resource: fmt.Sprintf("SNS topic %q", name),
		List: func(ctx context.Context) (map[string]string, error) {
			out, err := t.sns.ListTagsForResource(ctx, &awssns.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
			if err != nil {
				return nil, err
			}
			tags := make(map[string]string, len(out.Tags))
			for _, tg := range out.Tags {
				tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			return tags, nil
		},
		Add: func(ctx context.Context, tags map[string]string) error {
			in := &awssns.TagResourceInput{ResourceArn: aws.String(arn)}
			for k, v := range tags {
				in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
			}
			_, err := t.sns.TagResource(ctx, in)
			return err
		},
	}
}

// findOrCreateTopic returns the ARN of the topic's SNS topic, creating it
// when create is on and looking it up otherwise.
func (t *Transport) findOrCreateTopic(ctx context.Context, topic string) (string, error) {
	name := TopicName(t.s.Prefix, topic)
	if err := t.topicsMu.Lock(ctx); err != nil {
		return "", fmt.Errorf("%s: topic %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, name, err)
	}
	defer t.topicsMu.Unlock()
	if arn, ok := t.topics[name]; ok {
		return arn, nil
	}
	var arn string
	if !t.s.NoCreate {
		out, err := t.sns.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("%s: create topic %q: %w", t.where, name, err)
		}
		arn = aws.ToString(out.TopicArn)
	} else {
		var err error
		if arn, err = t.findTopic(ctx, name); err != nil {
			return "", err
		}
	}
	t.topics[name] = arn
	return arn, nil
}

func (t *Transport) findTopic(ctx context.Context, name string) (string, error) {
	pages := awssns.NewListTopicsPaginator(t.sns, &awssns.ListTopicsInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("%s: look up topic %q: %w", t.where, name, err)
		}
		for _, tp := range page.Topics {
			if arn := aws.ToString(tp.TopicArn); strings.HasSuffix(arn, ":"+name) {
				return arn, nil
			}
		}
	}
	return "", fmt.Errorf("%s: topic %q does not exist and create is false: create it, or set create: true", t.where, name)
}

// groupQueue returns the group's queue for topic, subscribed to the topic
// with raw delivery. With create off, the queue and its subscription are
// the administrator's: the queue is looked up and nothing is changed.
func (t *Transport) groupQueue(ctx context.Context, topic, group string) (awsq.Queue, error) {
	topicARN, err := t.topicARN(ctx, topic)
	if err != nil {
		return awsq.Queue{}, err
	}
	name := awsq.QueueName(t.s.Prefix+topic, group, false)
	q, err := t.queues.Ensure(ctx, name)
	if err != nil || t.s.NoCreate {
		return q, err
	}
	// Claimed on every Subscribe (another pair may map to a queue this
	// transport subscribed already), and before its policy is set: a
	// queue another pair maps to keeps the policy that lets its own
	// topic deliver.
	if err := t.claimQueue(ctx, q, topic, group); err != nil {
		return awsq.Queue{}, err
	}
	if err := t.topicsMu.Lock(ctx); err != nil {
		return awsq.Queue{}, fmt.Errorf("%s: subscribe queue %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, name, err)
	}
	defer t.topicsMu.Unlock()
	if _, ok := t.subscribed[q.ARN]; ok {
		return q, nil
	}
	if err := t.queues.SetPolicy(ctx, q, queuePolicy(q.ARN, topicARN)); err != nil {
		return awsq.Queue{}, err
	}
	out, err := t.sns.Subscribe(ctx, &awssns.SubscribeInput{TopicArn: aws.String(topicARN), Protocol: aws.String("sqs"),
		Endpoint: aws.String(q.ARN), Attributes: map[string]string{"RawMessageDelivery": "true"}, ReturnSubscriptionArn: true})
	if err != nil {
		return awsq.Queue{}, fmt.Errorf("%s: subscribe queue %q to topic %q: %w", t.where, name, TopicName(t.s.Prefix, topic), err)
	}
	t.subscribed[q.ARN] = aws.ToString(out.SubscriptionArn)
	return q, nil
}

// claimQueue records the topic and group whose queue q is (queue tags)
// and refuses another pair: queue names keep only letters, digits, '-'
// and '_' and join topic and group with '-', so distinct pairs can map to
// one queue, which would then get both topics' messages, or lose its own
// topic's when the other's policy replaced it.
func (t *Transport) claimQueue(ctx context.Context, q awsq.Queue, topic, group string) error {
	err := awsq.Claim(ctx, t.queues.SQS, q, awsq.Tag{Key: awsq.TopicTag, Name: topic}, awsq.Tag{Key: awsq.GroupTag, Name: group})
	var conflict *awsq.ClaimConflict
	if errors.As(err, &conflict) {
		return sdk.InvalidName(fmt.Errorf("sns: group %s of topic %s maps to queue %q, which is the queue of another topic and group (tag %s=%q): queue names keep only letters, digits, '-' and '_', and join topic and group with '-'. Rename the group",
			sdk.QuoteName(group), sdk.QuoteName(topic), q.Name, conflict.Key, conflict.Has))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.where, err)
	}
	return nil
}

// RemoveGroup unsubscribes the group's queue from the topic and deletes
// it, with the messages it holds. The topic stays.
func (t *Transport) RemoveGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return errors.New("sns: consumer group is empty; name the group to remove")
	}
	name := awsq.QueueName(t.s.Prefix+topic, group, false)
	q, found, err := t.queues.Find(ctx, name)
	if err != nil || !found {
		return err
	}
	topicName := TopicName(t.s.Prefix, topic)
	topicARN, err := t.topicARN(ctx, topic)
	if err != nil {
		return err
	}
	{
		var next *string
		for {
			out, err := t.sns.ListSubscriptionsByTopic(ctx, &awssns.ListSubscriptionsByTopicInput{TopicArn: aws.String(topicARN), NextToken: next})
			if err != nil {
				return fmt.Errorf("%s: list the subscriptions of topic %q: %w", t.where, topicName, err)
			}
			for _, sub := range out.Subscriptions {
				if aws.ToString(sub.Endpoint) != q.ARN {
					continue
				}
				if _, err := t.sns.Unsubscribe(ctx, &awssns.UnsubscribeInput{SubscriptionArn: sub.SubscriptionArn}); err != nil {
					return fmt.Errorf("%s: unsubscribe queue %q from topic %q: %w", t.where, name, topicName, err)
				}
			}
			if next = out.NextToken; aws.ToString(next) == "" {
				break
			}
		}
	}
	if err := t.topicsMu.Lock(ctx); err != nil {
		return fmt.Errorf("%s: remove queue %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, name, err)
	}
	delete(t.subscribed, q.ARN)
	t.topicsMu.Unlock()
	return t.queues.Delete(ctx, q)
}

// queuePolicy lets the topic, and only it, send to the queue.
func queuePolicy(queueARN, topicARN string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Sid":       "msgkit-sns-delivery",
			"Effect":    "Allow",
			"Principal": map[string]string{"Service": "sns.amazonaws.com"},
			"Action":    "sqs:SendMessage",
			"Resource":  queueARN,
			"Condition": map[string]any{"ArnEquals": map[string]string{"aws:SourceArn": topicARN}},
		}},
	})
	return string(b)
}

func (t *Transport) deleteReplyTopic(topic string, q awsq.Queue) error {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.PublishTimeout)
	defer cancel()
	var errs []error
	name := TopicName(t.s.Prefix, topic)
	if err := t.topicsMu.Lock(ctx); err != nil {
		return fmt.Errorf("%s: delete reply topic %q: waiting for another call creating a topic or subscribing a queue: %w", t.where, name, err)
	}
	topicARN := t.topics[name]
	subARN := t.subscribed[q.ARN]
	delete(t.topics, name)
	delete(t.subscribed, q.ARN)
	t.topicsMu.Unlock()
	if subARN != "" {
		if _, err := t.sns.Unsubscribe(ctx, &awssns.UnsubscribeInput{SubscriptionArn: aws.String(subARN)}); err != nil {
			errs = append(errs, fmt.Errorf("%s: unsubscribe reply queue %q: %w", t.where, q.Name, err))
		}
	}
	if err := t.queues.Delete(ctx, q); err != nil {
		errs = append(errs, err)
	}
	if topicARN != "" {
		if _, err := t.sns.DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: aws.String(topicARN)}); err != nil {
			errs = append(errs, fmt.Errorf("%s: delete reply topic %q: %w", t.where, name, err))
		}
	}
	return errors.Join(errs...)
}

// publishBatch sends a batch with PublishBatch.
func (t *Transport) publishBatch(ctx context.Context, topicARN string, batch []awsq.Encoded) []error {
	entries := make([]types.PublishBatchRequestEntry, len(batch))
	for i, e := range batch {
		attrs := make(map[string]types.MessageAttributeValue, len(e.Attributes))
		for k, v := range e.Attributes {
			attrs[k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		entries[i] = types.PublishBatchRequestEntry{Id: aws.String(awsq.BatchIDs[i]), Message: aws.String(e.Body), MessageAttributes: attrs}
	}
	out, err := t.sns.PublishBatch(ctx, &awssns.PublishBatchInput{TopicArn: aws.String(topicARN), PublishBatchRequestEntries: entries})
	if err != nil {
		err = fmt.Errorf("PublishBatch on %s: %w", t.where, err)
	}
	var ok []string
	failed := map[string]string{}
	if out != nil {
		for _, e := range out.Successful {
			ok = append(ok, aws.ToString(e.Id))
		}
		for _, e := range out.Failed {
			failed[aws.ToString(e.Id)] = fmt.Sprintf("SNS refused the message: %s: %s", aws.ToString(e.Code), aws.ToString(e.Message))
		}
	}
	return awsq.BatchResult(len(batch), err, ok, failed)
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

// TopicName is the SNS topic a topic maps to under prefix.
func TopicName(prefix, topic string) string {
	return awsq.QueueName(prefix+topic, "", false)
}

// QueueName is the SQS queue of a consumer group under prefix: for tooling
// and tests that need to find it.
func QueueName(prefix, topic, group string) string {
	return awsq.QueueName(prefix+topic, group, false)
}

var _ driver.Transport = (*Transport)(nil)
