package sqs_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// fakeSTS answers AssumeRole as STS does, recording what it was asked;
// refuse makes it answer AccessDenied.
type fakeSTS struct {
	mu     sync.Mutex
	forms  []url.Values
	auth   []string
	refuse bool
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.forms, f.auth = append(f.forms, r.PostForm), append(f.auth, r.Header.Get("Authorization"))
	refuse := f.refuse
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if refuse {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>r1</RequestId></ErrorResponse>`)
		return
	}
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMEDROLEKEY</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey><SessionToken>assumed-session-token</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/orders-publisher/svc</Arn><AssumedRoleId>AROAEXAMPLE:svc</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleResponse>`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// signedBy forwards to target and records each request's access key id.
type signedBy struct {
	mu    sync.Mutex
	keys  map[string]int
	proxy *httputil.ReverseProxy
}

func (s *signedBy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if _, rest, ok := strings.Cut(auth, "Credential="); ok {
		key, _, _ := strings.Cut(rest, "/")
		s.mu.Lock()
		s.keys[key+" token="+r.Header.Get("X-Amz-Security-Token")]++
		s.mu.Unlock()
	}
	s.proxy.ServeHTTP(w, r)
}

// With role_arn, the driver assumes the role with the base credentials
// (session name and external id as configured) and signs every SQS call
// with the role's temporary credentials; a role it may not assume fails
// Open saying so.
func TestAssumedRoleSignsEveryCall(t *testing.T) {
	target, err := url.Parse(testenv.AWSEndpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	sts := &fakeSTS{}
	stsSrv := httptest.NewServer(sts)
	defer stsSrv.Close()
	t.Setenv("AWS_ENDPOINT_URL_STS", stsSrv.URL)
	rec := &signedBy{keys: map[string]int{}, proxy: httputil.NewSingleHostReverseProxy(target)}
	sqsSrv := httptest.NewServer(rec)
	defer sqsSrv.Close()

	const role = "arn:aws:iam::123456789012:role/orders-publisher"
	opts := testenv.AWSOptions(map[string]string{"access_key_id": "AKIABASEKEY", "secret_access_key": "base-secret",
		"role_arn": role, "role_session_name": "orders-svc", "role_external_id": "ext-42"})
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: sqsSrv.URL, Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	testenv.ClientRoundTrip(t, c, topicName("role"))
	_ = c.Close(context.Background())

	sts.mu.Lock()
	if len(sts.forms) == 0 {
		t.Fatal("STS was never asked to assume the role")
	}
	f := sts.forms[0]
	if f.Get("Action") != "AssumeRole" || f.Get("RoleArn") != role || f.Get("RoleSessionName") != "orders-svc" || f.Get("ExternalId") != "ext-42" {
		t.Errorf("AssumeRole asked with %v; want role %s, session orders-svc, external id ext-42", f, role)
	}
	if !strings.Contains(sts.auth[0], "Credential=AKIABASEKEY/") {
		t.Errorf("AssumeRole must be signed with the base credentials, Authorization: %s", sts.auth[0])
	}
	sts.mu.Unlock()
	rec.mu.Lock()
	if len(rec.keys) != 1 || rec.keys["ASIAASSUMEDROLEKEY token=assumed-session-token"] == 0 {
		t.Errorf("every SQS call must be signed with the role's credentials and session token; signed with %v", rec.keys)
	}
	rec.mu.Unlock()

	sts.mu.Lock()
	sts.refuse = true
	sts.mu.Unlock()
	_, err = sdk.Open(context.Background(), sdk.Config{Driver: "sqs", URL: sqsSrv.URL, Options: opts})
	if err == nil || !strings.Contains(err.Error(), "assume role "+role) || !strings.Contains(err.Error(), "trust policy") ||
		strings.Contains(err.Error(), "base-secret") || strings.Contains(err.Error(), "ext-42") {
		t.Fatalf("a role that cannot be assumed must fail Open naming the role and the fix, without secrets; got %v", err)
	}
}
