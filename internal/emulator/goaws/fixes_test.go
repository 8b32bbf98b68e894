package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/Admiral-Piett/goaws/app/conf"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/sirupsen/logrus"
)

// emulatorQueue starts the corrected emulator on a test server and makes a
// queue named name there; ctx bounds the test's calls.
func emulatorQueue(t *testing.T, a *arrivals, name string) (*sqs.Client, *sqs.CreateQueueOutput, context.Context) {
	logrus.SetLevel(logrus.ErrorLevel)
	conf.LoadYamlConfig("goaws.yaml", "Local")
	srv := httptest.NewServer(fixWith(router.New(), a))
	t.Cleanup(srv.Close)
	c := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return c, q, ctx
}

// A long poll of a standard queue is answered when a message is sent, as
// SQS answers it, not at goaws's next look: with that look an hour away,
// the poll still returns the message sent while it waits.
func TestLongPollIsAnsweredWhenAMessageIsSent(t *testing.T) {
	defer func(d time.Duration) { pollEvery = d }(pollEvery)
	pollEvery = time.Hour
	arrivals := &arrivals{}
	c, q, ctx := emulatorQueue(t, arrivals, "long-poll")
	type answer struct {
		out *sqs.ReceiveMessageOutput
		err error
	}
	polled := make(chan answer, 1)
	go func() {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 20})
		polled <- answer{out, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		arrivals.mu.Lock()
		n := arrivals.sleeping
		arrivals.mu.Unlock()
		if n == 1 {
			break // the poll looked, found nothing, and waits
		}
		if time.Now().After(deadline) {
			t.Fatal("the long poll was not waiting within 5s")
		}
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-polled:
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.out.Messages) != 1 || aws.ToString(a.out.Messages[0].Body) != "hello" {
			t.Fatalf("the long poll returned %d messages, want the one sent", len(a.out.Messages))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a long poll waiting 20s did not return within 5s of a message being sent")
	}
}

// ChangeMessageVisibilityBatch, which goaws lacks, works entry by entry as
// SQS's does: a message made visible comes back, an unknown receipt fails
// alone, and the reply accounts for every entry by its id.
func TestChangeMessageVisibilityBatch(t *testing.T) {
	c, q, ctx := emulatorQueue(t, &arrivals{}, "visibility-batch")
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 5})
	if err != nil || len(got.Messages) != 1 {
		t.Fatalf("receive: %v, %d messages", err, len(got.Messages))
	}
	out, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: q.QueueUrl,
		Entries: []types.ChangeMessageVisibilityBatchRequestEntry{
			{Id: aws.String("a"), ReceiptHandle: got.Messages[0].ReceiptHandle, VisibilityTimeout: 0},
			{Id: aws.String("b"), ReceiptHandle: aws.String("no-such-receipt"), VisibilityTimeout: 0},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 1 || aws.ToString(out.Successful[0].Id) != "a" ||
		len(out.Failed) != 1 || aws.ToString(out.Failed[0].Id) != "b" || aws.ToString(out.Failed[0].Code) == "" {
		t.Fatalf("want entry a successful and b failed with a code, got %d successful, %d failed (%+v)", len(out.Successful), len(out.Failed), out.Failed)
	}
	again, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 5})
	if err != nil || len(again.Messages) != 1 || aws.ToString(again.Messages[0].Body) != "hello" {
		t.Fatalf("the message made visible again was not received again: %v, %d messages", err, len(again.Messages))
	}
}

// SNS topic tags are kept per topic as SNS keeps them: added, read back
// (text escaped on the wire and back), removed, and gone with the topic.
func TestTopicTags(t *testing.T) {
	logrus.SetLevel(logrus.ErrorLevel)
	conf.LoadYamlConfig("goaws.yaml", "Local")
	srv := httptest.NewServer(fixWith(router.New(), &arrivals{}))
	t.Cleanup(srv.Close)
	c := sns.New(sns.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic, err := c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("tagged")})
	if err != nil {
		t.Fatal(err)
	}
	tags := func() map[string]string {
		t.Helper()
		out, err := c.ListTagsForResource(ctx, &sns.ListTagsForResourceInput{ResourceArn: topic.TopicArn})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tg := range out.Tags {
			got[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return got
	}
	if got := tags(); len(got) != 0 {
		t.Fatalf("a new topic has tags %v", got)
	}
	if _, err := c.TagResource(ctx, &sns.TagResourceInput{ResourceArn: topic.TopicArn, Tags: []snstypes.Tag{
		{Key: aws.String("msgkit-topic"), Value: aws.String("orders.<created> & more")}, {Key: aws.String("b"), Value: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	if got := tags(); len(got) != 2 || got["msgkit-topic"] != "orders.<created> & more" || got["b"] != "2" {
		t.Fatalf("tags read back as %v", got)
	}
	if _, err := c.UntagResource(ctx, &sns.UntagResourceInput{ResourceArn: topic.TopicArn, TagKeys: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	if got := tags(); len(got) != 1 || got["msgkit-topic"] == "" {
		t.Fatalf("after removing b: %v", got)
	}
	if _, err := c.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: topic.TopicArn}); err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("tagged")})
	if err != nil {
		t.Fatal(err)
	}
	topic = again
	if got := tags(); len(got) != 0 {
		t.Fatalf("a topic made again after its deletion has the old one's tags %v", got)
	}
}

// Queues, topics and subscriptions made and removed while other calls look
// them up do not bring the emulator down. goaws reads its maps of queues
// and topics without a lock, and a map read during a write ends the
// process; under -race the detector reports it first. Each call is checked
// to succeed, so a call answered wrongly fails the test as well.
func TestCatalogChangesDuringOtherCalls(t *testing.T) {
	c, q, ctx := emulatorQueue(t, &arrivals{}, "busy")
	snsc := sns.New(sns.Options{Region: "us-east-1", BaseEndpoint: c.Options().BaseEndpoint,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	topic, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("busy")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: q.QueueUrl, Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}
	const rounds = 100
	errs := make(chan error, 4)
	run := func(name string, call func(i int) error) {
		go func() {
			for i := range rounds {
				if err := call(i); err != nil {
					errs <- fmt.Errorf("%s, round %d: %w", name, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	run("making and removing queues, topics and subscriptions", func(i int) error {
		name := fmt.Sprintf("churn-%d", i)
		made, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			return err
		}
		tp, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
		if err != nil {
			return err
		}
		sub, err := snsc.Subscribe(ctx, &sns.SubscribeInput{TopicArn: tp.TopicArn, Protocol: aws.String("sqs"), Endpoint: made.QueueUrl})
		if err != nil {
			return err
		}
		if _, err := snsc.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: sub.SubscriptionArn}); err != nil {
			return err
		}
		if _, err := snsc.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: tp.TopicArn}); err != nil {
			return err
		}
		_, err = c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: made.QueueUrl})
		return err
	})
	run("sending and publishing", func(i int) error {
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: []types.SendMessageBatchRequestEntry{
			{Id: aws.String("a"), MessageBody: aws.String("sent")}}}); err != nil {
			return err
		}
		_, err := snsc.Publish(ctx, &sns.PublishInput{TopicArn: topic.TopicArn, Message: aws.String("published")})
		return err
	})
	run("receiving and settling", func(i int) error {
		got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10})
		if err != nil || len(got.Messages) == 0 {
			return err
		}
		m := got.Messages[0]
		if _, err := c.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: q.QueueUrl,
			Entries: []types.ChangeMessageVisibilityBatchRequestEntry{{Id: aws.String("a"), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 30}}}); err != nil {
			return err
		}
		_, err = c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl,
			Entries: []types.DeleteMessageBatchRequestEntry{{Id: aws.String("a"), ReceiptHandle: m.ReceiptHandle}}})
		return err
	})
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
