package rabbitmq

import (
	"strconv"
	"testing"
	"time"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// A request's deadline becomes the AMQP expiration, so the queue drops the
// request unread once its caller has given up.
func TestRequestDeadlineBecomesTheBrokersExpiration(t *testing.T) {
	deadline := time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339Nano)
	p := toPublishing(&driver.Message{ID: "r-1", Metadata: map[string]string{sdk.KeyDeadline: deadline}}, true, false)
	ms, err := strconv.Atoi(p.Expiration)
	if err != nil || ms < 1000 || ms > 2000 {
		t.Fatalf("expiration %q: want the milliseconds left until the deadline", p.Expiration)
	}
	past := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if p := toPublishing(&driver.Message{ID: "r-2", Metadata: map[string]string{sdk.KeyDeadline: past}}, true, false); p.Expiration != "1" {
		t.Fatalf("a deadline already past: want expiration 1 (ms), got %q", p.Expiration)
	}
	if p := toPublishing(&driver.Message{ID: "m-1", Metadata: map[string]string{}}, true, false); p.Expiration != "" {
		t.Fatalf("a message without a deadline must not expire: %q", p.Expiration)
	}
}
