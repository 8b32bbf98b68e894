package sqs_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/msgkit/msgkit/adapters/internal/awsq"
	"github.com/msgkit/msgkit/adapters/sqs"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func open(ctx context.Context, endpoint string, extra map[string]string) (*testenv.Transport, error) {
	return testenv.Watermill(sqs.Driver{}.Open(ctx, sdk.Config{Driver: "sqs", URL: endpoint, Options: testenv.AWSOptions(extra)}))
}

func TestConformance(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open:       func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(ctx, endpoint, nil) },
		OpenConfig: sqs.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: "sqs", URL: "http://" + addr,
				Options: testenv.AWSOptions(map[string]string{"secret_access_key": "s3cret-in-the-url"})}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: "sqs", URL: testenv.ProxiedURL(endpoint, proxy), Options: testenv.AWSOptions(nil)}
		},
		InjectRaw: injectSQS(endpoint, nil), // a SendMessage with no attributes
		// A structured-mode event beside its content type.
		InjectEvent: injectSQS(endpoint, map[string]types.MessageAttributeValue{
			"content-type": {DataType: aws.String("String"), StringValue: aws.String("application/cloudevents+json")}}),
	})
}

// injectSQS sends payload to a topic's queue with the given attributes, as
// a producer that is not msgkit would.
func injectSQS(endpoint string, attrs map[string]types.MessageAttributeValue) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		c := rawSQS(endpoint)
		out, err := c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(awsq.QueueName("ct-"+topic, "", false))})
		if err != nil {
			return err
		}
		_, err = c.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: out.QueueUrl, MessageBody: aws.String(string(payload)), MessageAttributes: attrs})
		return err
	}
}

func TestConformanceFIFO(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open: func(ctx context.Context, t *testing.T) (driver.Transport, error) {
			return open(ctx, endpoint, map[string]string{"fifo": "true"})
		},
	})
}
