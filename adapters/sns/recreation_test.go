package sns_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	awssqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/adapters/internal/awsq"
	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A topic and its group's queue deleted under a running client (by an
// administrator, or goaws restarting empty) are created again: the topic
// by the next publish, the queue and its subscription to the topic by the
// subscription, instead of failing both until the client is reopened.
func TestDeletedTopicAndQueueAreCreatedAgain(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	c := sdk.NewClient(mustOpen(t, endpoint, nil))
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	rawQ, rawT := rawSQS(endpoint), rawSNS(endpoint)
	topic := topicName("recreated")
	queue := sns.QueueName("ct-", topic, "g")
	// The topic's ARN and the queue's URL and ARN, as they are now.
	find := func(ctx context.Context) (topicARN, queueURL, queueARN string, err error) {
		topics, err := rawT.ListTopics(ctx, &awssns.ListTopicsInput{})
		if err != nil {
			return "", "", "", err
		}
		for _, tp := range topics.Topics {
			if arn := aws.ToString(tp.TopicArn); strings.HasSuffix(arn, ":"+sns.TopicName("ct-", topic)) {
				topicARN = arn
			}
		}
		out, err := rawQ.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(queue)})
		if awsq.Gone(err) {
			return topicARN, "", "", nil
		}
		if err != nil {
			return "", "", "", err
		}
		attrs, err := rawQ.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []awssqstypes.QueueAttributeName{"QueueArn"}})
		if err != nil {
			return "", "", "", err
		}
		return topicARN, aws.ToString(out.QueueUrl), attrs.Attributes["QueueArn"], nil
	}
	testenv.OutlivesRecreation(t, c, topic, testenv.Recreation{
		Remove: func(ctx context.Context) error {
			topicARN, queueURL, _, err := find(ctx)
			if err != nil || topicARN == "" || queueURL == "" {
				return errors.Join(err, errors.New("the topic or the group's queue to delete is missing"))
			}
			if _, err := rawT.DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: aws.String(topicARN)}); err != nil {
				return err
			}
			_, err = rawQ.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(queueURL)})
			return err
		},
		Restored: func(ctx context.Context) (bool, error) {
			topicARN, queueURL, queueARN, err := find(ctx)
			if err != nil || topicARN == "" || queueURL == "" {
				return false, err
			}
			subs, err := rawT.ListSubscriptionsByTopic(ctx, &awssns.ListSubscriptionsByTopicInput{TopicArn: aws.String(topicARN)})
			if err != nil {
				return false, err
			}
			for _, s := range subs.Subscriptions {
				if aws.ToString(s.Endpoint) == queueARN {
					return true, nil
				}
			}
			return false, nil
		},
		// The publish creates the topic, which then has no queue to
		// deliver to until the subscription has restored its own.
		FirstPublishArrives: false,
	})
}

// A publish made while the endpoint restarts waits for it, until its
// deadline, as on the other brokers, instead of failing once the AWS SDK's
// own three attempts are spent.
func TestPublishWaitsForARestartingEndpoint(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	r := testenv.NewRestartable(t, strings.TrimPrefix(endpoint, "http://"))
	c := sdk.NewClient(mustOpen(t, "http://"+r.Addr(), nil))
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	testenv.PublishWaitsForRestart(t, r, c, topicName("restart"))
}
