package awsq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Queue tags recording whose messages a queue holds. Queue names hold
// only letters, digits, '-' and '_' (QueueName replaces the rest), so
// distinct topics (orders.created, orders-created) or topic and group
// pairs (a with b-c, a-b with c) can map to one queue; the tags let a
// subscription find out instead of silently sharing another's messages.
const (
	TopicTag = "msgkit-topic"
	GroupTag = "msgkit-group"
)

// maxTagValue is the longest tag value SQS stores; a longer name is
// recorded as its SHA-256.
const maxTagValue = 256

// TagValue is how name is recorded in a queue tag.
func TagValue(name string) string {
	if len(name) <= maxTagValue {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// A ClaimConflict is a queue already tagged with another value for Key.
type ClaimConflict struct {
	Queue string
	Key   string
	Has   string // the tag's value
}

func (c *ClaimConflict) Error() string {
	return fmt.Sprintf("queue %q has tag %s=%q", c.Queue, c.Key, c.Has)
}

// A Tag is a queue tag a claim records: the topic or group name under Key.
type Tag struct{ Key, Name string }

// Claim records tags on q where they are missing and returns a
// *ClaimConflict for the first whose key holds another name. Names are
// compared as TagValue records them.
func Claim(ctx context.Context, client *sqs.Client, q Queue, tags ...Tag) error {
	out, err := client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(q.URL)})
	if err != nil {
		return fmt.Errorf("read the tags of queue %q: %w", q.Name, err)
	}
	missing := map[string]string{}
	for _, t := range tags {
		v := TagValue(t.Name)
		switch has := out.Tags[t.Key]; has {
		case "":
			missing[t.Key] = v
		case v:
		default:
			return &ClaimConflict{Queue: q.Name, Key: t.Key, Has: has}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(q.URL), Tags: missing}); err != nil {
		return fmt.Errorf("tag queue %q with its topic and group: %w", q.Name, err)
	}
	return nil
}
