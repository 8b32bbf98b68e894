package sns_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/msgkit/msgkit/adapters/sns"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

func open(ctx context.Context, endpoint string, extra map[string]string) (*testenv.Transport, error) {
	return testenv.Watermill(sns.Driver{}.Open(ctx, sdk.Config{Driver: "sns", URL: endpoint, Options: testenv.AWSOptions(extra)}))
}

func TestConformance(t *testing.T) {
	endpoint := testenv.AWSEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Open:       func(ctx context.Context, t *testing.T) (driver.Transport, error) { return open(ctx, endpoint, nil) },
		OpenConfig: sns.Driver{}.Open,
		ConfigAt: func(addr string) sdk.Config {
			return sdk.Config{Driver: "sns", URL: "http://" + addr,
				Options: testenv.AWSOptions(map[string]string{"secret_access_key": "s3cret-in-the-url"})}
		},
		Secret: "s3cret-in-the-url",
		Proxied: func(proxy func(string) string) sdk.Config {
			return sdk.Config{Driver: "sns", URL: testenv.ProxiedURL(endpoint, proxy), Options: testenv.AWSOptions(nil)}
		},
		InjectRaw: injectSNS(endpoint, nil), // a Publish with no attributes
		// A structured-mode event beside its content type.
		InjectEvent: injectSNS(endpoint, map[string]types.MessageAttributeValue{
			"content-type": {DataType: aws.String("String"), StringValue: aws.String("application/cloudevents+json")}}),
	})
}

// injectSNS publishes payload to a topic's SNS topic with the given
// attributes, as a producer that is not msgkit would.
func injectSNS(endpoint string, attrs map[string]types.MessageAttributeValue) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		c := rawSNS(endpoint)
		out, err := c.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(sns.TopicName("ct-", topic))}) // the topic's ARN
		if err != nil {
			return err
		}
		_, err = c.Publish(ctx, &awssns.PublishInput{TopicArn: out.TopicArn, Message: aws.String(string(payload)), MessageAttributes: attrs})
		return err
	}
}
