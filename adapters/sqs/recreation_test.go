package sqs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/internal/awsq"
	"github.com/msgkit/msgkit/internal/testenv"
)

// A queue deleted under a running client (by an administrator, or goaws
// restarting empty) is created again by the next publish and by the
// subscription, instead of failing both until the client is reopened.
func TestDeletedQueueIsCreatedAgain(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	c := mustClient(t, endpoint, nil)
	raw := rawSQS(endpoint)
	topic := "recreated-" + uuid.NewString()[:8]
	name := awsq.QueueName("ct-"+topic, "", false)
	testenv.OutlivesRecreation(t, c, topic, testenv.Recreation{
		Remove: func(ctx context.Context) error {
			_, err := raw.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: aws.String(queueURL(t, raw, name))})
			return err
		},
		Restored: func(ctx context.Context) (bool, error) {
			_, err := raw.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
			var missing *types.QueueDoesNotExist
			if err != nil && (errors.As(err, &missing) || awsq.Gone(err)) {
				return false, nil
			}
			return err == nil, err
		},
		FirstPublishArrives: true, // the publish creates the queue the subscription reads
	})
}

// A publish made while the endpoint restarts waits for it, until its
// deadline, as on the other brokers, instead of failing once the AWS SDK's
// own three attempts are spent.
func TestPublishWaitsForARestartingEndpoint(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	r := testenv.NewRestartable(t, strings.TrimPrefix(endpoint, "http://"))
	c := mustClient(t, "http://"+r.Addr(), nil)
	testenv.PublishWaitsForRestart(t, r, c, "restart-"+uuid.NewString()[:8])
}
