package nats_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/msgkit/msgkit/internal/testenv"
)

// A message that carries a header more than once (a client that appended
// to it) arrives with the values joined by commas, as HTTP reads a
// repeated field, and the subscription logs it once per header name,
// never its values.
func TestRepeatedHeaderIsJoinedAndLogged(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("repeated")
	logs := testenv.DefaultLog(t)
	c := client(t, url, nil)
	got := subscribe(t, c, topic, group, ok)
	_, js := rawJetStream(t, url)
	for i, tags := range [][]string{{"value-one", "value-two", "value-three"}, {"value-four", "value-five"}} {
		m := nats.NewMsg(topic)
		m.Data = []byte("from another producer")
		m.Header.Set("_watermill_message_uuid", []string{"rep-1", "rep-2"}[i])
		for _, v := range tags {
			m.Header.Add("x-tag", v)
		}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		want := strings.Join(tags, ",")
		if msg := testenv.Await(t, got, "the message with a repeated header"); msg.Get("x-tag") != want {
			t.Fatalf("want x-tag %q (every value, joined), got %q", want, msg.Get("x-tag"))
		}
	}
	warnings := logs.Lines("more than once", topic)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "header=x-tag") || !strings.Contains(warnings[0], "times=3") ||
		!strings.Contains(warnings[0], "message_id=rep-1") || strings.Contains(warnings[0], "value-") {
		t.Fatalf("want one warning naming header x-tag, 3 times, message rep-1, and no value; got %q", warnings)
	}
}
