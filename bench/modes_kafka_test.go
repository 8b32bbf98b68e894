package bench

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["kafka"] = kafkaModes }

// kafkaModes: raw franz-go, msgkit, and watermill-kafka (sarama) stock and
// tuned, on topics of the driver's 3 partitions. Consumer groups are named
// per topic: a Kafka group spans the cluster.
func kafkaModes(b *testing.B) *broker {
	url := testenv.Kafka(b)
	brokers := kafkaBrokers(url)
	// Stock: watermill-kafka's documented defaults, except that a new group
	// reads from the oldest offset (sarama's default is the newest, which
	// would skip the backlog the drain mode measures).
	stockSub := wkafka.DefaultSaramaSubscriberConfig()
	stockSub.Consumer.Offsets.Initial = sarama.OffsetOldest
	stockPub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	closeLater(b, stockPub)
	// Tuned: what the SDK and raw consumers are given too (fetches answered
	// within 10ms), and the idempotent, all-replica producer the others use
	// (Kafka's safe settings), with room for concurrent publishers.
	tunedSub := wkafka.DefaultSaramaSubscriberConfig()
	tunedSub.Consumer.Offsets.Initial = sarama.OffsetOldest
	tunedSub.Consumer.MaxWaitTime = fetchWait
	tunedPubCfg := wkafka.DefaultSaramaSyncPublisherConfig()
	tunedPubCfg.Version = sarama.V3_6_0_0
	tunedPubCfg.Producer.RequiredAcks = sarama.WaitForAll
	tunedPubCfg.Producer.Idempotent = true
	tunedPubCfg.Net.MaxOpenRequests = 1
	tunedPubCfg.ChannelBufferSize = 1024
	tunedPub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: tunedPubCfg}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	closeLater(b, tunedPub)
	newSub := func(cfg *sarama.Config) func(topic, group string) (message.Subscriber, error) {
		return func(topic, group string) (message.Subscriber, error) {
			return wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{},
				ConsumerGroup: topic + "." + group, OverwriteSaramaConfig: cfg}, watermill.NopLogger{})
		}
	}
	noPrepare := func(context.Context, string, string) error { return nil } // new groups read from the start
	sys := []*system{
		franzSystem(b, url),
		msgkitSystem("msgkit", kafkaClient(b, url)),
		watermillSystem("watermill-kafka", stockPub, newSub(stockSub), 1),
		watermillSystem("watermill tuned", tunedPub, newSub(tunedSub), 1),
	}
	for _, s := range sys {
		s.prepare = noPrepare
	}
	return &broker{
		name:     "Kafka (kfake)",
		newTopic: func(b *testing.B) string { return createKafkaTopic(b, url) },
		systems:  sys,
	}
}

// franzSystem: one franz-go client producing (idempotent, acks from all
// replicas: its defaults; concurrent ProduceSync calls share its batches),
// and per consumer a group client polling 500 records at a time and
// marking them for its autocommit.
func franzSystem(b *testing.B, url string) *system {
	producer := rawFranz(b, url)
	record := func(topic string, p []byte) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: p, Headers: []kgo.RecordHeader{
			{Key: wkafka.UUIDHeaderKey, Value: []byte(uuid.NewString())},
			{Key: sdk.KeyTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		}}
	}
	return &system{
		name: "franz-go",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			recs := make([]*kgo.Record, len(payloads))
			for i, p := range payloads {
				recs[i] = record(topic, p)
			}
			return producer.ProduceSync(ctx, recs...).FirstErr()
		},
		consume: func(ctx context.Context, topic, group string, got func([]byte)) (func(), error) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(url)...), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(topic+"."+group),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitMarks(), kgo.FetchMaxWait(fetchWait))
			if err != nil {
				return nil, err
			}
			stop := loop(ctx, func(ctx context.Context) error {
				fetches := cl.PollRecords(ctx, 500)
				if err := fetches.Err0(); err != nil && ctx.Err() == nil {
					return err
				}
				recs := fetches.Records()
				for _, r := range recs {
					got(r.Value)
				}
				cl.MarkCommitRecords(recs...)
				return nil
			})
			return func() { stop(); cl.Close() }, nil
		},
	}
}
