package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/msgkit/msgkit/adapters/kafka"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// When the broker leading one partition refuses a batch's records and
// the other takes them, the messages reported failed are exactly the ones
// that were not stored: the cluster answers partition by partition, so its
// answers come in another order than the batch, and a failure must not be
// pinned on another message (which would then count as sent, and be lost).
func TestPartlyRefusedBatchFailsExactlyTheRefusedMessages(t *testing.T) {
	topic, _ := names("partly")
	c := startCluster(t, kfake.NumBrokers(2), kfake.Ports(testenv.FreePort(t), testenv.FreePort(t)), kfake.SeedTopics(2, topic))
	bad := c.LeaderFor(topic, 0)
	if good := c.LeaderFor(topic, 1); good == bad {
		if err := c.MoveTopicPartition(topic, 1, 1-bad); err != nil {
			t.Fatal(err)
		}
	}
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if c.CurrentNode() != bad {
			return nil, nil, false
		}
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	url := "kafka://" + c.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := kafka.Driver{}.Open(ctx, sdk.Config{Driver: "kafka", URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var msgs []*driver.Message
	for i := range 40 {
		key := fmt.Sprint("key-", i)
		msgs = append(msgs, &driver.Message{ID: fmt.Sprint("m", i), Payload: []byte("x"), OrderingKey: key,
			Metadata: map[string]string{sdk.KeyOrderingKey: key}})
	}
	err = tr.SendBatch(ctx, topic, msgs)
	var be driver.BatchError
	if !errors.As(err, &be) || len(be) != len(msgs) {
		t.Fatalf("want a BatchError for %d messages (one partition refuses), got %v", len(msgs), err)
	}
	sent := map[string]bool{}
	for i, m := range msgs {
		if be[i] == nil {
			sent[m.ID] = true
		}
	}
	if len(sent) == 0 || len(sent) == len(msgs) {
		t.Fatalf("%d of %d reported sent: the keys must spread over both partitions", len(sent), len(msgs))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	stored := map[string]bool{}
	for len(stored) < len(sent) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == wkafka.UUIDHeaderKey {
					stored[string(h.Value)] = true
				}
			}
		})
	}
	for id := range sent {
		if !stored[id] {
			t.Errorf("message %s was reported sent but is not in the topic (a refusal pinned on another message)", id)
		}
	}
	for id := range stored {
		if !sent[id] {
			t.Errorf("message %s is in the topic but was reported failed", id)
		}
	}
}
