package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["sqs"] = sqsModes }

// sqsModes: raw aws-sdk-go-v2 and msgkit on goaws, an emulator: what it
// shows is each client's cost against the same endpoint, not SQS's rates.
// There is no Watermill SQS adapter in this module's dependencies.
func sqsModes(b *testing.B) *broker {
	endpoint := testenv.AWSEndpoint(b)
	raw := rawSQSClient(endpoint)
	return &broker{
		name: "SQS (goaws)",
		newTopic: removedTopics(b, "sqs-modes", func(t string) {
			for _, name := range []string{t, sqs.QueueName("", t, false)} { // raw's queue, msgkit's
				out, err := raw.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
				if err == nil {
					_, _ = raw.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
				}
			}
		}),
		systems: []*system{
			sqsSystem(raw),
			msgkitSystem("msgkit", sqsClient(b, endpoint)),
		},
	}
}

// sqsSystem: SendMessage per single message; a batch cut into
// SendMessageBatch calls of ten sent by sqsSenders goroutines; 4 receivers
// long-polling ten at a time, each deleting what it got with one
// DeleteMessageBatch. Messages carry the SDK's id and ce-time attributes;
// bodies are base64, as an SQS body must be text (the payloads are binary).
func sqsSystem(c *awssqs.Client) *system {
	var mu sync.Mutex
	urls := map[string]string{}
	queue := func(ctx context.Context, topic string) (string, error) {
		mu.Lock()
		url, ok := urls[topic]
		mu.Unlock()
		if ok {
			return url, nil
		}
		out, err := c.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(topic)})
		if err != nil {
			return "", fmt.Errorf("create queue %s: %w", topic, err)
		}
		mu.Lock()
		urls[topic] = aws.ToString(out.QueueUrl)
		mu.Unlock()
		return aws.ToString(out.QueueUrl), nil
	}
	attrs := func() map[string]types.MessageAttributeValue {
		return map[string]types.MessageAttributeValue{
			"msgkit-id": {DataType: aws.String("String"), StringValue: aws.String(uuid.NewString())},
			sdk.KeyTime: {DataType: aws.String("String"), StringValue: aws.String(time.Now().UTC().Format(time.RFC3339Nano))},
		}
	}
	return &system{
		name: "aws-sdk-go-v2",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			url, err := queue(ctx, topic)
			if err != nil {
				return err
			}
			if len(payloads) == 1 {
				_, err := c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(base64.StdEncoding.EncodeToString(payloads[0])), MessageAttributes: attrs()})
				return err
			}
			batches := make(chan []types.SendMessageBatchRequestEntry, len(payloads)/10+1)
			for i := 0; i < len(payloads); i += 10 {
				entries := make([]types.SendMessageBatchRequestEntry, 0, 10)
				for j := i; j < min(i+10, len(payloads)); j++ {
					entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)),
						MessageBody: aws.String(base64.StdEncoding.EncodeToString(payloads[j])), MessageAttributes: attrs()})
				}
				batches <- entries
			}
			close(batches)
			var wg sync.WaitGroup
			errs := make(chan error, sqsSenders)
			for range sqsSenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for entries := range batches {
						out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
						if err == nil && len(out.Failed) > 0 {
							err = fmt.Errorf("%d of %d entries failed", len(out.Failed), len(entries))
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		},
		prepare: func(ctx context.Context, topic, _ string) error {
			_, err := queue(ctx, topic)
			return err
		},
		consume: func(ctx context.Context, topic, _ string, got func([]byte)) (func(), error) {
			url, err := queue(ctx, topic)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
							WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
						if err != nil || len(out.Messages) == 0 {
							continue
						}
						entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
						for i, m := range out.Messages {
							p, _ := base64.StdEncoding.DecodeString(aws.ToString(m.Body))
							got(p)
							entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
						}
						_, _ = c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
					}
				}()
			}
			return func() { cancel(); wg.Wait() }, nil
		},
	}
}
