package awsq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// Tags recording whose messages a queue or SNS topic holds. Queue and
// topic names hold only letters, digits, '-' and '_' (QueueName replaces
// the rest), so distinct topics (orders.created, orders-created) or topic
// and group pairs (a with b-c, a-b with c) can map to one name; the tags
// let a publish or subscription find out instead of silently sharing
// another's messages.
const (
	TopicTag = "msgkit-topic"
	GroupTag = "msgkit-group"
)

// maxTagValue is the longest tag value SQS and SNS store; a longer name
// is recorded as its SHA-256.
const maxTagValue = 256

// TagValue is how name is recorded in a tag.
func TagValue(name string) string {
	if len(name) <= maxTagValue {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// A ClaimConflict is a queue or topic already tagged with another value
// for Key.
type ClaimConflict struct {
	Resource string // `queue "name"` or `SNS topic "name"`
	Key      string
	Has      string // the tag's value
}

func (c *ClaimConflict) Error() string {
	return fmt.Sprintf("%s has tag %s=%q", c.Resource, c.Key, c.Has)
}

// A Tag is a tag a claim records: the topic or group name under Key.
type Tag struct{ Key, Name string }

// TagStore reads and adds the tags of one queue or SNS topic.
type TagStore struct {
	Resource string // `queue "name"` or `SNS topic "name"`, for errors
	List     func(context.Context) (map[string]string, error)
	Add      func(context.Context, map[string]string) error
}

// Claim records tags where they are missing and returns a *ClaimConflict
// for the first whose key holds another name. Names are compared as
// TagValue records them.
func (s TagStore) Claim(ctx context.Context, tags ...Tag) error {
	have, err := s.List(ctx)
	if err != nil {
		return fmt.Errorf("read the tags of %s: %w", s.Resource, err)
	}
	missing := map[string]string{}
	for _, t := range tags {
		v := TagValue(t.Name)
		switch was := have[t.Key]; was {
		case "":
			missing[t.Key] = v
		case v:
		default:
			return &ClaimConflict{Resource: s.Resource, Key: t.Key, Has: was}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := s.Add(ctx, missing); err != nil {
		return fmt.Errorf("tag %s with its topic and group: %w", s.Resource, err)
	}
	return nil
}

// QueueTags is the TagStore of queue q.
func QueueTags(client *sqs.Client, q Queue) TagStore {
	return TagStore{
		Resource: fmt.Sprintf("queue %q", q.Name),
		List: func(ctx context.Context) (map[string]string, error) {
			out, err := client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(q.URL)})
			if err != nil {
				return nil, err
			}
			return out.Tags, nil
		},
		Add: func(ctx context.Context, tags map[string]string) error {
			_, err := client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(q.URL), Tags: tags})
			return err
		},
	}
}

// Claim records the tags on queue q (QueueTags(client, q).Claim).
func Claim(ctx context.Context, client *sqs.Client, q Queue, tags ...Tag) error {
	return QueueTags(client, q).Claim(ctx, tags...)
}

// answeredCodes are the errors by which the service says it could not do
// the call now, or that the queue or topic is gone: a publish fails on
// them as it would on its own call.
var answeredCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestThrottled": true, "RequestThrottledException": true,
	"ServiceUnavailable": true, "InternalError": true, "InternalFailure": true, "RequestCanceled": true,
	"QueueDoesNotExist": true, "AWS.SimpleQueueService.NonExistentQueue": true, "NotFound": true,
}

// ClaimRefused reports whether a claim's err is the service refusing the
// tag calls themselves: a policy without the tag actions (a publish-only
// one), an SQS-compatible service without tags. A publish then goes
// unchecked (PublishClaims) rather than failing; a conflict, a credential
// the service refuses or no answer is not a refusal.
func ClaimRefused(err error) bool {
	var conflict *ClaimConflict
	var api smithy.APIError
	if errors.As(err, &conflict) || !errors.As(err, &api) {
		return false
	}
	code := api.ErrorCode()
	return !answeredCodes[code] && !credentialCodes[code]
}

// maxPublishClaims bounds the topics a PublishClaims remembers: a
// responder replies to a reply topic per requesting client, and a
// long-running one meets many.
const maxPublishClaims = 10000

// PublishClaims claims, on the first publish to each topic, the topic tag
// of the queue or SNS topic the publishes go to, so that a publish to a
// topic whose name maps to another topic's queue or SNS topic is refused
// instead of delivered to that topic's consumers. A service that refuses
// the tag calls (ClaimRefused) leaves publishes unchecked, said once in
// the log.
type PublishClaims struct {
	Logger *slog.Logger
	// Grant names the actions that let the check run, for the log line.
	Grant string

	mu      sync.Mutex
	claimed map[string]bool // topics whose claim is done or refused
	said    bool
}

// Check claims store's topic tag for topic, unless an earlier publish to
// topic did. It returns a *ClaimConflict when the tag names another topic.
func (p *PublishClaims) Check(ctx context.Context, topic string, store TagStore) error {
	p.mu.Lock()
	done := p.claimed[topic]
	p.mu.Unlock()
	if done {
		return nil
	}
	err := store.Claim(ctx, Tag{Key: TopicTag, Name: topic})
	refused := err != nil && ClaimRefused(err)
	if err != nil && !refused {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.claimed == nil || len(p.claimed) >= maxPublishClaims {
		p.claimed = map[string]bool{} // a topic forgotten is claimed again: one call
	}
	p.claimed[topic] = true
	if refused && !p.said {
		p.said = true
		p.Logger.Info("publishes are not checked against other topics mapped to the same name: the tag calls were refused; grant "+p.Grant+" to have them checked",
			"resource", store.Resource, "error", err)
	}
	return nil
}

// Forget drops topic's claim, so that the next publish to it claims the
// tag again: its queue or SNS topic was found gone, and one created again
// has no tags.
func (p *PublishClaims) Forget(topic string) {
	p.mu.Lock()
	delete(p.claimed, topic)
	p.mu.Unlock()
}
