package awsq

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/msgkit/msgkit/sdk"
)

// Refused credentials fail the check saying so; an answer that refuses
// only the call (a policy without sqs:ListQueues) passes; an AssumeRole
// failure names the role.
func TestCheckEndpointTellsCredentialsFromPermissions(t *testing.T) {
	s := Settings{Driver: "sqs", creds: credentials{RoleARN: "arn:aws:iam::123456789012:role/r"}}
	check := func(err error) error {
		return s.CheckEndpoint(context.Background(), "sqs at X", func(context.Context) error { return err })
	}
	for _, code := range []string{"InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"} {
		err := check(&smithy.OperationError{ServiceID: "SQS", OperationName: "ListQueues", Err: &smithy.GenericAPIError{Code: code}})
		if err == nil || !strings.Contains(err.Error(), "AWS refused the credentials") {
			t.Errorf("%s: want an error saying the credentials were refused, got %v", code, err)
		}
	}
	if err := check(&smithy.OperationError{ServiceID: "SQS", Err: &smithy.GenericAPIError{Code: "AccessDenied"}}); err != nil {
		t.Errorf("an AccessDenied on the check's call proves endpoint and credentials work, got %v", err)
	}
	sts := &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: &smithy.GenericAPIError{Code: "AccessDenied"}}
	err := check(&smithy.OperationError{ServiceID: "SQS", Err: errors.Join(errors.New("failed to refresh cached credentials"), sts)})
	if err == nil || !strings.Contains(err.Error(), "assume role arn:aws:iam::123456789012:role/r") {
		t.Errorf("an AssumeRole failure must name the role, got %v", err)
	}
}

func TestRoleOptionsAreChecked(t *testing.T) {
	for _, c := range []struct {
		opts map[string]string
		key  string
	}{
		{map[string]string{"role_arn": "orders-publisher"}, "options.role_arn"},
		{map[string]string{"role_arn": "arn:aws:iam::123456789012:user/bob"}, "options.role_arn"},
		{map[string]string{"role_arn": "arn:aws:iam::123456789012:role/r", "role_session_name": "has space"}, "options.role_session_name"},
		{map[string]string{"role_external_id": "x"}, "options.role_external_id"},
		{map[string]string{"tls_ca_pem": "x"}, "options.tls_ca_pem"},
	} {
		c.opts["region"] = "us-east-1"
		_, err := ParseSettings(sdk.Config{Driver: "sqs", URL: "http://127.0.0.1:4100", Options: c.opts}, "sqs")
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != c.key {
			t.Errorf("%v: want a ConfigError for %s, got %v", c.opts, c.key, err)
		}
	}
}
