package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/awshttp"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// sqsSenders is the driver's default number of concurrent batch sends per
// queue; the raw publisher uses as many.
const sqsSenders = 8

func sqsClient(b *testing.B, endpoint string) *sdk.Client {
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: endpoint, Options: map[string]string{
		"region": "us-east-1", "access_key_id": "bench", "secret_access_key": "bench", "wait_time": "1s"}}, sdk.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// rawSQSClient is a plain aws-sdk-go-v2 client with the driver's HTTP
// transport fix (awshttp.DetachedBody): without it, about one receive in a
// hundred is retried by the SDK and its first attempt's messages stay
// invisible for the 30s visibility timeout, which is all such a run measures.
func rawSQSClient(endpoint string) *awssqs.Client {
	return awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		HTTPClient:  &http.Client{Transport: awshttp.DetachedBody(http.DefaultTransport)}})
}

func createSQSQueue(b *testing.B, c *awssqs.Client, name string) string {
	out, err := c.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		b.Fatal(err)
	}
	url := aws.ToString(out.QueueUrl)
	b.Cleanup(func() { c.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: aws.String(url)}) })
	return url
}

// rawSQSSend sends n messages with SendMessageBatch, batchSize per round:
// each round is cut into batches of ten sent by sqsSenders goroutines, and
// the next round starts when all were answered, as one Client.Publish call
// of batchSize messages does. Each message carries what the SDK sends for
// a message with only an id and a payload: its id and ce-time attributes.
func rawSQSSend(b *testing.B, c *awssqs.Client, url string, n int) {
	ctx := context.Background()
	for sent := 0; sent < n; {
		k := min(batchSize, n-sent)
		batches := make(chan []types.SendMessageBatchRequestEntry, k/10+1)
		for i := 0; i < k; i += 10 {
			entries := make([]types.SendMessageBatchRequestEntry, 0, 10)
			for j := i; j < min(i+10, k); j++ {
				entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j - i)), MessageBody: aws.String(string(payload)),
					MessageAttributes: map[string]types.MessageAttributeValue{
						"msgkit-id": {DataType: aws.String("String"), StringValue: aws.String(uuid.NewString())},
						sdk.KeyTime: {DataType: aws.String("String"), StringValue: aws.String(time.Now().UTC().Format(time.RFC3339Nano))},
					}})
			}
			batches <- entries
		}
		close(batches)
		var wg sync.WaitGroup
		for w := 0; w < sqsSenders; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for entries := range batches {
					out, err := c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
					if err != nil || len(out.Successful) != len(entries) {
						b.Errorf("SendMessageBatch: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		sent += k
	}
}

func BenchmarkSQSPublish(b *testing.B) {
	endpoint := testenv.AWSEndpoint(b)
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		c := rawSQSClient(endpoint)
		url := createSQSQueue(b, c, uniqueTopic("sqs-pub"))
		b.ResetTimer()
		rawSQSSend(b, c, url, b.N)
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic := uniqueTopic("sqs-pub")
		createSQSQueue(b, rawSQSClient(endpoint), sqs.QueueName("", topic, false))
		c := sqsClient(b, endpoint)
		b.ResetTimer()
		publishSDK(b, c, topic)
	})
	r.report(b, "sqs publish")
}

func BenchmarkSQSConsume(b *testing.B) {
	endpoint := testenv.AWSEndpoint(b)
	var r rates
	// Each variant drains a queue prefilled (untimed) with b.N messages,
	// timed from the first message on.
	prefill := func(b *testing.B) (topic, url string) {
		c := rawSQSClient(endpoint)
		topic = uniqueTopic("sqs-sub")
		url = createSQSQueue(b, c, sqs.QueueName("", topic, false))
		rawSQSSend(b, c, url, b.N)
		return topic, url
	}
	r.run(b, "raw", func(b *testing.B) {
		_, url := prefill(b)
		c := rawSQSClient(endpoint)
		ctx := context.Background()
		first := true
		for got := 0; got < b.N; {
			out, err := c.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
				WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
			if err != nil {
				b.Fatal(err)
			}
			if len(out.Messages) == 0 {
				continue
			}
			if first {
				b.ResetTimer()
				first = false
			}
			entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
			for i, m := range out.Messages {
				entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
			}
			if _, err := c.DeleteMessageBatch(ctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
				b.Fatal(err)
			}
			got += len(out.Messages)
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic, _ := prefill(b)
		c := sqsClient(b, endpoint)
		seen := make(chan struct{}, 1024)
		if _, err := c.Subscribe(context.Background(), topic, "g", func(context.Context, *sdk.Message) error {
			seen <- struct{}{}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		<-seen
		b.ResetTimer()
		for i := 1; i < b.N; i++ {
			<-seen
		}
	})
	r.report(b, "sqs consume")
}

// BenchmarkSQSAPICalls reports messages per API call at saturation, counted
// by a proxy in front of the endpoint: SQS bills per call. Publishing is
// measured both as Publish calls of batchSize messages and as 64 goroutines
// publishing one message at a time.
func BenchmarkSQSAPICalls(b *testing.B) {
	proxy := testenv.NewAWSProxy(b, testenv.AWSEndpoint(b))
	c := sqsClient(b, proxy.URL)
	topic := uniqueTopic("sqs-calls")
	createSQSQueue(b, rawSQSClient(proxy.URL), sqs.QueueName("", topic, false))
	before := func(action string) int { return proxy.Calls(action) }

	b.ResetTimer()
	sends := before("SendMessageBatch")
	publishSDK(b, c, topic)
	bulk := float64(b.N) / float64(proxy.Calls("SendMessageBatch")-sends)

	sends = before("SendMessageBatch")
	var wg sync.WaitGroup
	next := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if err := c.Publish(context.Background(), topic, &sdk.Message{Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	single := float64(b.N) / float64(proxy.Calls("SendMessageBatch")-sends)

	receives, deletes := before("ReceiveMessage"), before("DeleteMessageBatch")
	consumeSDK(b, c, topic, "g", 2*b.N)
	if err := c.Close(context.Background()); err != nil { // flushes the last deletes
		b.Fatal(err)
	}
	perReceive := float64(2*b.N) / float64(proxy.Calls("ReceiveMessage")-receives)
	perDelete := float64(2*b.N) / float64(proxy.Calls("DeleteMessageBatch")-deletes)
	b.ReportMetric(bulk, "msgs/send(bulk)")
	b.ReportMetric(single, "msgs/send(1-per-publish)")
	b.ReportMetric(perReceive, "msgs/receive")
	b.ReportMetric(perDelete, "msgs/delete")
	fmt.Printf("api calls: sqs send %.1f msgs/call (Publish of %d), %.1f msgs/call (64 goroutines publishing 1 at a time), receive %.1f, delete %.1f\n",
		bulk, batchSize, single, perReceive, perDelete)
}
