package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/testenv"
)

// A record that carries a header more than once (kafkajs with an array of
// values, a Java producer adding it twice) arrives with the last value,
// and the subscription logs it once per header name, never its values.
func TestRepeatedHeaderKeepsTheLastValueAndIsLogged(t *testing.T) {
	url := testenv.Kafka(t)
	topic, group := names("repeated")
	logs := testenv.DefaultLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, raw := consumeRaw(t, ctx, url, topic, group)
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	first := &kgo.Record{Topic: topic, Value: []byte("1"), Headers: []kgo.RecordHeader{
		h("x-tag", "value-one"), h("_watermill_message_uuid", "rep-1"), h("x-tag", "value-two"), h("x-tag", "value-three"), h("x-once", "o"),
	}}
	second := &kgo.Record{Topic: topic, Value: []byte("2"), Headers: []kgo.RecordHeader{
		h("_watermill_message_uuid", "rep-2"), h("x-tag", "value-four"), h("x-tag", "value-five"),
	}}
	if err := raw.ProduceSync(ctx, first, second).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ id, tag string }{{"rep-1", "value-three"}, {"rep-2", "value-five"}} {
		m := testenv.Await(t, got, "record "+want.id)
		if m.ID != want.id || m.Get("x-tag") != want.tag {
			t.Fatalf("want message %s with x-tag %q (the last value), got %s with %q", want.id, want.tag, m.ID, m.Get("x-tag"))
		}
	}
	warnings := logs.Lines("more than once", topic)
	if len(warnings) != 1 || !strings.Contains(warnings[0], "header=x-tag") || !strings.Contains(warnings[0], "times=3") ||
		!strings.Contains(warnings[0], "message_id=rep-1") || strings.Contains(warnings[0], "value-") {
		t.Fatalf("want one warning naming header x-tag, 3 times, message rep-1, and no value; got %q", warnings)
	}
}
