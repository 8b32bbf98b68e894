package awsq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/msgkit/msgkit/internal/lock"
)

// Queue is an SQS queue the drivers use.
type Queue struct {
	Name string
	URL  string
	ARN  string
}

// Queues finds and creates queues, caching what it learned.
type Queues struct {
	SQS   *sqs.Client
	S     Settings
	Where string

	mu    lock.Mutex // held while a queue is looked up or created
	known map[string]Queue
}

// Ensure returns the queue called name, creating it (and its dead-letter
// queue when max_receive_count is set) when create is on.
func (q *Queues) Ensure(ctx context.Context, name string) (Queue, error) {
	if err := q.mu.Lock(ctx); err != nil {
		return Queue{}, fmt.Errorf("%s: queue %q: waiting for another call looking up or creating a queue: %w", q.Where, name, err)
	}
	defer q.mu.Unlock()
	if qu, ok := q.known[name]; ok {
		return qu, nil
	}
	if q.known == nil {
		q.known = map[string]Queue{}
	}
	var qu Queue
	var err error
	if q.S.NoCreate {
		qu, err = q.lookup(ctx, name)
		if err != nil {
			return Queue{}, fmt.Errorf("%s: queue %q: %w (create is false: create the queue, or set create: true)", q.Where, name, err)
		}
	} else {
		attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(int(q.S.VisibilityTimeout / time.Second))}
		if q.S.FIFO {
			attrs["FifoQueue"] = "true"
			attrs["ContentBasedDeduplication"] = "false" // the message id is the deduplication id
		}
		if q.S.MaxReceiveCount > 0 {
			dlqName := strings.TrimSuffix(name, ".fifo") + "-dlq"
			dlqAttrs := map[string]string{}
			if q.S.FIFO {
				dlqName += ".fifo"
				dlqAttrs["FifoQueue"] = "true"
			}
			dlq, err := q.create(ctx, dlqName, dlqAttrs)
			if err != nil {
				return Queue{}, err
			}
			redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlq.ARN, "maxReceiveCount": strconv.Itoa(q.S.MaxReceiveCount)})
			attrs["RedrivePolicy"] = string(redrive)
		}
		if qu, err = q.create(ctx, name, attrs); err != nil {
			return Queue{}, err
		}
	}
	q.known[name] = qu
	return qu, nil
}

// Forget drops what q knows of the queue called name, so that the next
// Ensure looks it up, or creates it, again: it was found gone.
func (q *Queues) Forget(ctx context.Context, name string) error {
	if err := q.mu.Lock(ctx); err != nil {
		return fmt.Errorf("%s: queue %q: waiting for another call looking up or creating a queue: %w", q.Where, name, err)
	}
	delete(q.known, name)
	q.mu.Unlock()
	return nil
}

// SetPolicy sets the queue's access policy (SNS needs one to deliver).
func (q *Queues) SetPolicy(ctx context.Context, qu Queue, policy string) error {
	if _, err := q.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(qu.URL),
		Attributes: map[string]string{"Policy": policy}}); err != nil {
		return fmt.Errorf("%s: set the access policy of queue %q (it lets the SNS topic deliver to it): %w", q.Where, qu.Name, err)
	}
	return nil
}

func (q *Queues) create(ctx context.Context, name string, attrs map[string]string) (Queue, error) {
	out, err := q.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		var exists *types.QueueNameExists
		if !errors.As(err, &exists) {
			return Queue{}, fmt.Errorf("%s: create queue %q: %w", q.Where, name, err)
		}
		// It exists with other attributes (set by an administrator): use it as is.
		return q.lookup(ctx, name)
	}
	return q.describe(ctx, name, aws.ToString(out.QueueUrl))
}

// Find looks up a queue without creating it; found is false when it does
// not exist.
func (q *Queues) Find(ctx context.Context, name string) (qu Queue, found bool, err error) {
	qu, err = q.lookup(ctx, name)
	var missing *types.QueueDoesNotExist
	var api smithy.APIError
	if errors.As(err, &missing) || errors.As(err, &api) && api.ErrorCode() == "AWS.SimpleQueueService.NonExistentQueue" {
		return Queue{}, false, nil // the second form: the query protocol's code, which goaws and older endpoints send
	}
	return qu, err == nil, err
}

func (q *Queues) lookup(ctx context.Context, name string) (Queue, error) {
	out, err := q.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return Queue{}, fmt.Errorf("%s: find queue %q: %w", q.Where, name, err)
	}
	return q.describe(ctx, name, aws.ToString(out.QueueUrl))
}

func (q *Queues) describe(ctx context.Context, name, url string) (Queue, error) {
	out, err := q.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return Queue{}, fmt.Errorf("%s: read the ARN of queue %q: %w", q.Where, name, err)
	}
	return Queue{Name: name, URL: url, ARN: out.Attributes[string(types.QueueAttributeNameQueueArn)]}, nil
}

// Delete removes a queue the driver created for itself (a reply queue).
func (q *Queues) Delete(ctx context.Context, qu Queue) error {
	if err := q.mu.Lock(ctx); err != nil {
		return fmt.Errorf("%s: delete queue %q: waiting for another call looking up or creating a queue: %w", q.Where, qu.Name, err)
	}
	delete(q.known, qu.Name)
	q.mu.Unlock()
	if _, err := q.SQS.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(qu.URL)}); err != nil {
		return fmt.Errorf("%s: delete queue %q: %w", q.Where, qu.Name, err)
	}
	return nil
}
