package sdk_test

import (
	"strings"
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// RedactURL, which every driver uses to name a broker, drops the password
// of any URL, and so does a config error about the URL.
func FuzzRedactURLKeepsPassword(f *testing.F) {
	for _, pw := range testenv.SecretSeeds {
		f.Add("amqp", "app", pw, "host:5672/vhost")
		f.Add("redis", "", pw, "[::1")
		f.Add("", "u", pw, "h")
	}
	f.Fuzz(func(t *testing.T, scheme, user, password, rest string) {
		testenv.KeepsSecret(t, password, func(pw string) error {
			return errorString(sdk.RedactURL(scheme + "://" + user + ":" + pw + "@" + rest))
		}, scheme, user, rest)
	})
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestParseURLRefusesAPasswordThatEndsTheUserInfo(t *testing.T) {
	for _, raw := range []string{"amqp://app:Pa55/word@host:5672/", "nats://app:s3c#ret@host:4222", "redis://:pw?x@host:6379/0", "amqp://0:0000#@00", "amqp://host:5672/v@h"} {
		if _, err := sdk.ParseURL(raw); err == nil || !strings.Contains(err.Error(), "percent-encoded") {
			t.Errorf("%s: want an error saying to percent-encode, got %v", raw, err)
		}
		if red := sdk.RedactURL(raw); strings.Contains(red, "Pa55") || strings.Contains(red, "s3c") || strings.Contains(red, "pw") || strings.Contains(red, "0000") {
			t.Errorf("RedactURL(%q) = %q keeps part of the password", raw, red)
		}
	}
	for _, raw := range []string{"amqp://app:p%41ss%2Fw@host:5672/", "amqp://host:5672/v%40h", "amqp://a:b@c@host/", "redis://127.0.0.1:6379/0", "nats://u:p@h:1"} {
		if _, err := sdk.ParseURL(raw); err != nil {
			t.Errorf("%s: want it parsed, got %v", raw, err)
		}
	}
}
