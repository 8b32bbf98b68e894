package rabbitmq

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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

// The header frame size read from a message is never below the size of
// the publishing toPublishing makes of it (else a message over one AMQP
// frame would reach the client library, which fails the whole channel),
// and is not far above it (else a message that fits would be refused).
func TestHeaderFrameSizeBoundsThePublishing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []string{sdk.KeyContentType, sdk.KeyCorrelationID, sdk.KeyReplyTo, sdk.KeyEventType, sdk.KeySource,
		sdk.KeyTime, "ce-subject", "ce-id", "trace", "x", "ce-specversion"}
	for i := range 2000 {
		md := map[string]string{}
		for range rng.IntN(6) {
			md[keys[rng.IntN(len(keys))]] = strings.Repeat("v", rng.IntN(300))
		}
		if rng.IntN(4) == 0 {
			md[sdk.KeyDeadline] = time.Now().Add(time.Duration(rng.IntN(1e6)) * time.Hour).UTC().Format(time.RFC3339Nano)
		}
		m := &driver.Message{ID: strings.Repeat("i", rng.IntN(300)), Metadata: md}
		cloudEvents := rng.IntN(2) == 0
		p := toPublishing(m, true, cloudEvents)
		want := publishingFrameSize(&p)
		got, _ := headerFrameSize(m, cloudEvents)
		// Above it by the expiration's room, and by entries the publishing
		// merges: ce-id and ce-specversion become the binding's own.
		slack := 20
		if cloudEvents {
			slack += len(md["ce-id"]) + len(md["ce-specversion"]) + 2*(len("cloudEvents:specversion")+6)
		}
		if got < want || got > want+slack {
			t.Fatalf("message %d (cloudEvents %v, metadata %v): bound %d, publishing %d: want at least it and at most %d more",
				i, cloudEvents, keysOf(md), got, want, slack)
		}
	}
}

// publishingFrameSize is the size of p's content header frame as AMQP
// encodes it, less the frame's fixed parts: properties and headers, each
// header a name, a type and a long string.
func publishingFrameSize(p *amqp.Publishing) int {
	n := 64
	for k, v := range p.Headers {
		n += 1 + len(k) + 1 + 4 + len(v.(string))
	}
	for _, s := range []string{p.ContentType, p.ContentEncoding, p.CorrelationId, p.ReplyTo, p.Expiration, p.MessageId, p.Type, p.UserId, p.AppId} {
		n += 1 + len(s)
	}
	return n
}

func keysOf(md map[string]string) []string {
	out := make([]string, 0, len(md))
	for k := range md {
		out = append(out, k)
	}
	return out
}
