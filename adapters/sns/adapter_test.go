package sns_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"

	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func topicName(prefix string) string { return prefix + "-" + uuid.NewString()[:8] }

func mustOpen(t *testing.T, endpoint string, extra map[string]string) *testenv.Transport {
	t.Helper()
	tr, err := open(context.Background(), endpoint, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func rawSQS(endpoint string) *awssqs.Client {
	return awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

func rawSNS(endpoint string) *awssns.Client {
	return awssns.New(awssns.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// createGroup makes the group's queue and its subscription, as a
// subscriber's first Subscribe does, without consuming anything.
func createGroup(t *testing.T, tr *testenv.Transport, topic, group string) {
	t.Helper()
	sub, err := tr.Subscriber(group)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := sub.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGroupQueuesGetRawDeliveryWithAttributes(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	tr := mustOpen(t, endpoint, nil)
	topic := topicName("raw")
	createGroup(t, tr, topic, "billing")
	createGroup(t, tr, topic, "shipping")

	c := sdk.NewClient(tr)
	msg := sdk.NewMessage([]byte(`{"order":42}`))
	msg.EventType = "order.created"
	msg.Metadata = map[string]string{"tenant": "acme"}
	if err := c.Publish(context.Background(), topic, msg); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(endpoint)
	for _, group := range []string{"billing", "shipping"} {
		name := sns.QueueName("ct-", topic, group)
		url, err := raw.GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(name)})
		if err != nil {
			t.Fatalf("group %q must have its queue %q: %v", group, name, err)
		}
		out, err := raw.ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{QueueUrl: url.QueueUrl,
			WaitTimeSeconds: 5, MessageAttributeNames: []string{"All"}})
		if err != nil || len(out.Messages) != 1 {
			t.Fatalf("group %q's queue must hold the message: %v, %d messages", group, err, len(out.Messages))
		}
		m := out.Messages[0]
		if body := aws.ToString(m.Body); body != `{"order":42}` {
			t.Fatalf("raw message delivery: the queue message's body must be the payload, not an SNS envelope; got %q", body)
		}
		for k, want := range map[string]string{sdk.KeyEventType: "order.created", "tenant": "acme", "msgkit-id": msg.ID} {
			if got := aws.ToString(m.MessageAttributes[k].StringValue); got != want {
				t.Errorf("group %q: SNS message attribute %q must arrive as an SQS message attribute: got %q, want %q", group, k, got, want)
			}
		}
	}
}

func TestPublishSendsFullBatches(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	tr := mustOpen(t, proxy.URL, nil)
	msgs := make([]*message.Message, 25)
	for i := range msgs {
		msgs[i] = message.NewMessage(uuid.NewString(), []byte(fmt.Sprint(i)))
	}
	if err := tr.Publisher().Publish(topicName("batch"), msgs...); err != nil {
		t.Fatal(err)
	}
	if calls, entries := proxy.Calls("PublishBatch"), proxy.BatchEntries("PublishBatch"); calls != 3 || entries != 25 {
		t.Fatalf("25 messages in one Publish must take 3 PublishBatch calls (10+10+5), took %d carrying %d entries", calls, entries)
	}
	if n := proxy.Calls("Publish"); n != 0 {
		t.Fatalf("publishing must never send one message per call; Publish was called %d times", n)
	}
}

func TestReplyTopicAndQueueAreDeletedOnClose(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	prefix := "ct-" + uuid.NewString()[:8] + "-"
	opts := testenv.AWSOptions(map[string]string{"prefix": prefix})
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sns", URL: endpoint, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Respond(context.Background(), "echo", "echo-service", func(ctx context.Context, m *sdk.Message) (*sdk.Message, error) {
		return sdk.NewMessage(m.Payload), nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, "echo", sdk.NewMessage([]byte("ping")))
	if err != nil || string(reply.Payload) != "ping" {
		t.Fatalf("request/reply over SNS: %v, %v", reply, err)
	}
	replyTopics := func() []string {
		var names []string
		pages := awssns.NewListTopicsPaginator(rawSNS(endpoint), &awssns.ListTopicsInput{})
		for pages.HasMorePages() {
			page, err := pages.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, tp := range page.Topics {
				if arn := aws.ToString(tp.TopicArn); strings.Contains(arn, ":"+prefix+"_reply") {
					names = append(names, arn)
				}
			}
		}
		return names
	}
	replyQueues := func() []string {
		out, err := rawSQS(endpoint).ListQueues(context.Background(), &awssqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix + "_reply")})
		if err != nil {
			t.Fatal(err)
		}
		return out.QueueUrls
	}
	if len(replyTopics()) != 1 || len(replyQueues()) != 1 {
		t.Fatalf("a requesting client must have one reply topic and one reply queue; topics %v, queues %v", replyTopics(), replyQueues())
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if topics, queues := replyTopics(), replyQueues(); len(topics) != 0 || len(queues) != 0 {
		t.Fatalf("closing the client must delete its reply topic and queue; left topics %v, queues %v", topics, queues)
	}
}

func TestFIFOIsRefused(t *testing.T) {
	_, err := sns.Driver{}.Open(context.Background(), sdk.Config{Driver: "sns", Options: testenv.AWSOptions(map[string]string{"fifo": "true"})})
	var ce *sdk.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "options.fifo") || !strings.Contains(err.Error(), "sqs driver") {
		t.Fatalf("fifo: true must be refused with a config error pointing to the sqs driver, got %v", err)
	}
}

func TestMissingTopicWithoutCreation(t *testing.T) {
	tr := mustOpen(t, testenv.AWSEndpoint(t), map[string]string{"create": "false"})
	topic := topicName("absent")
	err := tr.Publisher().Publish(topic, message.NewMessage(uuid.NewString(), []byte("x")))
	if err == nil || !strings.Contains(err.Error(), sns.TopicName("ct-", topic)) || !strings.Contains(err.Error(), "create: true") {
		t.Fatalf("publishing to a missing topic with create false must name the topic and the fix, got %v", err)
	}
}

func TestUnreachableEndpointNamesHostAndHidesSecret(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-SECRET"
	_, err := sns.Driver{}.Open(context.Background(), sdk.Config{Driver: "sns", URL: "http://127.0.0.1:1",
		Options: map[string]string{"region": "us-east-1", "access_key_id": "AKIAEXAMPLE", "secret_access_key": secret}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("the error must name the endpoint and the cause, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("the error leaks the secret key: %v", err)
	}
}

// New runs on the caller's AWS configuration and names a bad option.
func TestNewOnTheCallersAWSConfig(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	ac := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	var ce *sdk.ConfigError
	if _, err := sns.New(ac, sns.Options{Endpoint: endpoint, WaitTime: 1500 * time.Millisecond}); !errors.As(err, &ce) || ce.Key != "options.wait_time" {
		t.Fatalf("a wait in part seconds must be a ConfigError naming it, got %v", err)
	}
	if _, err := sns.New(ac, sns.Options{Endpoint: "http://user:Secr3t@[::1"}); err == nil || strings.Contains(err.Error(), "Secr3t") {
		t.Fatalf("an endpoint that does not parse must be refused without its password, got %v", err)
	}
	tr, err := sns.New(ac, sns.Options{Endpoint: endpoint, Prefix: "ct-", WaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RoundTrip(t, tr, topicName("new"))
}

// Two topic and group pairs whose names map to one queue (a with b-c, a-b
// with c: queue names join them with '-') do not share it: the second is
// refused naming the first before it sets the queue's policy (which would
// admit only its own topic), so the first group still gets its messages.
func TestGroupsSharingAQueueNameAreRefused(t *testing.T) {
	proxy := testenv.NewAWSProxy(t, testenv.AWSEndpoint(t))
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sns", URL: proxy.URL, Options: testenv.AWSOptions(nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	first := topicName("ct-pair")
	got := make(chan string, 1)
	if _, err := c.Subscribe(context.Background(), first, "b-c", func(_ context.Context, m *sdk.Message) error {
		got <- string(m.Payload)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	policies := proxy.Calls("SetQueueAttributes")
	_, err = c.Subscribe(context.Background(), first+"-b", "c", func(context.Context, *sdk.Message) error { return nil })
	if !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), "is the queue of another topic and group") || !strings.Contains(err.Error(), "Rename the group") {
		t.Fatalf("group %q of topic %q maps to the queue of group %q of %q: Subscribe must be refused, got %v", "c", first+"-b", "b-c", first, err)
	}
	if n := proxy.Calls("SetQueueAttributes") - policies; n != 0 {
		t.Fatalf("the refused Subscribe set the queue's attributes %d times: its policy would admit the other topic only", n)
	}
	if err := c.Publish(context.Background(), first, &sdk.Message{Payload: []byte("still delivered")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != "still delivered" {
			t.Fatalf("got %q", p)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the first group got nothing after the refused Subscribe")
	}
}

// A topic whose name maps to another topic's SNS topic (SNS topic names
// keep only letters, digits, '-' and '_') is refused naming that topic,
// to publish and to subscribe, whichever of the two came first; the other
// topic's groups get only their own messages.
func TestTopicMappedToAnotherTopicsSNSTopicIsRefused(t *testing.T) {
	testenv.CheckTopicsMappedToOneName(t, "sns", "carries the messages of topic %q")
}

// A publisher whose policy does not grant the SNS tag calls publishes
// unchecked instead of failing, and asks only once per topic.
func TestPublishWithoutTopicTagPermissionsIsUnchecked(t *testing.T) {
	testenv.CheckPublishWithoutTagPermissions(t, "sns", "ListTagsForResource", "TagResource", "AuthorizationError")
}
