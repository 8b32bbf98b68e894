package sns_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// A queue an administrator subscribed to a topic without raw message
// delivery receives SNS's JSON envelope around each message; a consumer
// on the sqs driver gets the message as it was published.
func TestEnvelopeOfANonRawSubscriptionIsUnwrapped(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uuid.NewString()[:8]
	topic, queueTopic := "envelope-"+id, "envelope-q-"+id
	topicOut, err := rawSNS(endpoint).CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(sns.TopicName("ct-", topic))})
	if err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(endpoint)
	q, err := raw.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(sqs.QueueName("ct-", queueTopic, false))})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := raw.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawSNS(endpoint).Subscribe(ctx, &awssns.SubscribeInput{TopicArn: topicOut.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)])}); err != nil {
		t.Fatal(err)
	}

	pub, err := sdk.Open(ctx, sdk.Config{Driver: "sns", URL: endpoint, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	sent := sdk.NewMessage([]byte{0, 0xff, 'e'})
	sent.EventType = "invoice.paid"
	sent.Set("city", "Zürich")
	if err := pub.Publish(ctx, topic, sent); err != nil {
		t.Fatal(err)
	}

	sub, err := sdk.Open(ctx, sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(context.Background())
	got := make(chan *sdk.Message, 1)
	if _, err := sub.Subscribe(ctx, queueTopic, "billing", func(_ context.Context, m *sdk.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "the message through the non-raw subscription")
	if m.ID != sent.ID || !bytes.Equal(m.Payload, sent.Payload) || m.Get("city") != "Zürich" || m.EventType != "invoice.paid" {
		t.Fatalf("got id %q payload %q metadata %v; want the message as published (id %s)", m.ID, m.Payload, m.Metadata, sent.ID)
	}
}
