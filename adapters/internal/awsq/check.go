package awsq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/aws/smithy-go"

	"github.com/msgkit/msgkit/sdk"
)

// credentialCodes are the error codes by which AWS refuses a request's
// signature or credentials, as opposed to what they may do.
var credentialCodes = map[string]bool{
	"InvalidClientTokenId": true, "SignatureDoesNotMatch": true, "UnrecognizedClientException": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "InvalidAccessKeyId": true, "IncompleteSignature": true,
	"MissingAuthenticationToken": true, "InvalidSecurity": true, "AuthFailure": true, "InvalidSignatureException": true,
}

// CheckEndpoint makes one cheap call by ctx's deadline (15s when it has
// none), so that Open fails on an endpoint that does not answer, a refused
// TLS handshake, refused credentials or a role that cannot be assumed,
// rather than the first Publish. An answer that refuses the call itself
// (a policy that does not grant it, as a publish-only one need not) proves
// the rest works, and passes.
func (s Settings) CheckEndpoint(ctx context.Context, where string, call func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	err := call(ctx)
	if err == nil {
		return nil
	}
	if op := stsError(err); op != nil {
		return fmt.Errorf("%s: assume role %s: %w (the base credentials could not assume role_arn: check the role's trust policy, role_external_id, and that STS is reachable)",
			where, s.creds.RoleARN, op)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if credentialCodes[api.ErrorCode()] {
			return fmt.Errorf("%s: %w (AWS refused the credentials: check access_key_id, secret_access_key and session_token, or the default chain's, and the region)", where, err)
		}
		return nil // an answer from the service: endpoint, TLS and credentials work
	}
	if e := sdk.ExplainTLS(err, s.tls); e != err {
		return fmt.Errorf("%s: %w", where, e)
	}
	if u, perr := sdk.ParseURL(s.Endpoint); perr == nil && u.Scheme == "http" && speaksTLS(ctx, u.Host) {
		return fmt.Errorf("%s: %w (the endpoint speaks TLS: write https:// in url)", where, err)
	}
	return fmt.Errorf("%s: no answer from the endpoint: %w (is the endpoint right and reachable by the deadline?)", where, err)
}

// stsError returns the STS failure in err's chain, when fetching the
// assumed role's credentials is what failed.
func stsError(err error) *smithy.OperationError {
	if op, ok := err.(*smithy.OperationError); ok && op.ServiceID == "STS" {
		return op
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return stsError(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if op := stsError(e); op != nil {
				return op
			}
		}
	}
	return nil
}

// speaksTLS reports whether the server at hostport answers a TLS
// handshake, to tell a plain http:// endpoint on a TLS port from one that
// is down. Nothing is sent after the handshake, and the certificate is
// not trusted for anything.
func speaksTLS(ctx context.Context, hostport string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // only detects TLS; no data is sent
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err == nil {
		_ = conn.Close()
		return true
	}
	var alert tls.AlertError
	var op *net.OpError
	return errors.As(err, &alert) || (errors.As(err, &op) && op.Op == "remote error")
}
