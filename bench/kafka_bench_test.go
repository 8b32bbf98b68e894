package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/msgkit/msgkit/adapters/kafka"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func kafkaBrokers(url string) []string {
	return strings.Split(strings.TrimPrefix(url, "kafka://"), ",")
}

// fetchWait bounds how long the broker holds a fetch with nothing new, for
// the raw and the SDK consumer alike. At Kafka's default (500ms) a consumer
// that drained one partition while another's buffer was full stalls for it
// at random near the end of a run, which swamps the comparison.
const fetchWait = 10 * time.Millisecond

func kafkaClient(b *testing.B, url string) *sdk.Client {
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "kafka", URL: url,
		Options: map[string]string{"fetch_max_wait": fetchWait.String()}}, sdk.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// rawKafkaConfig is the driver's producer and consumer configuration
// (idempotent producer, acks from all in-sync replicas, round-robin group
// balancing, reading new groups from the oldest offset), so that both sides
// ask the same of the cluster.
func rawKafkaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 10
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.MaxWaitTime = fetchWait
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	return c
}

// rawFranz is a franz-go client as a team would write it: acks from all
// in-sync replicas and idempotence (franz-go's defaults), keys hashed as the
// driver does.
func rawFranz(b *testing.B, url string, opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafkaBrokers(url)...)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl
}

// kafkaPartitions is the driver's default partition count.
const kafkaPartitions = 3

// createKafkaTopic creates a topic with the driver's default partitions.
func createKafkaTopic(b *testing.B, url string) string {
	topic := uniqueTopic("kafka")
	admin, err := sarama.NewClusterAdmin(kafkaBrokers(url), rawKafkaConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: kafkaPartitions, ReplicationFactor: -1}, false); err != nil {
		b.Fatal(err)
	}
	// Deleted afterwards: the emulator keeps every record in memory, and a
	// heap growing run after run would slow the variants that run later.
	b.Cleanup(func() {
		if admin, err := sarama.NewClusterAdmin(kafkaBrokers(url), rawKafkaConfig()); err == nil {
			_ = admin.DeleteTopic(topic)
			_ = admin.Close()
		}
	})
	return topic
}

// rawKafkaPublish sends n records through a sarama AsyncProducer, batchSize
// at a time, waiting for each batch's acknowledgements as Client.Publish
// does. Each record carries what the SDK writes for a message with only an
// id and a payload: the id and ce-time headers.
func rawKafkaPublish(b *testing.B, p sarama.AsyncProducer, topic string, n int) {
	for sent := 0; sent < n; {
		k := min(batchSize, n-sent)
		for i := 0; i < k; i++ {
			p.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(payload), Headers: []sarama.RecordHeader{
				{Key: []byte(wkafka.UUIDHeaderKey), Value: []byte(uuid.NewString())},
				{Key: []byte(sdk.KeyTime), Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
			}}
		}
		for i := 0; i < k; i++ {
			select {
			case <-p.Successes():
			case err := <-p.Errors():
				b.Fatal(err)
			}
		}
		sent += k
	}
}

func BenchmarkKafkaPublish(b *testing.B) {
	url := testenv.Kafka(b)
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		topic := createKafkaTopic(b, url)
		cl := rawFranz(b, url)
		ctx := context.Background()
		b.ResetTimer()
		for sent := 0; sent < b.N; {
			n := min(batchSize, b.N-sent)
			records := make([]*kgo.Record, n)
			for i := range records {
				// Wire-identical to the SDK's records: the id and ce-time headers.
				records[i] = &kgo.Record{Topic: topic, Value: payload, Headers: []kgo.RecordHeader{
					{Key: wkafka.UUIDHeaderKey, Value: []byte(uuid.NewString())},
					{Key: sdk.KeyTime, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
				}}
			}
			if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			sent += n
		}
	})
	r.run(b, "raw-sarama", func(b *testing.B) {
		topic := createKafkaTopic(b, url)
		p, err := sarama.NewAsyncProducer(kafkaBrokers(url), rawKafkaConfig())
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		b.ResetTimer()
		rawKafkaPublish(b, p, topic, b.N)
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic := createKafkaTopic(b, url)
		c := kafkaClient(b, url)
		b.ResetTimer()
		publishSDK(b, c, topic)
	})
	r.report(b, "kafka publish")
}

// groupHandler marks every record of its claims and counts them.
type groupHandler struct {
	seen chan struct{}
}

func (groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		s.MarkMessage(m, "")
		h.seen <- struct{}{}
	}
	return nil
}

func BenchmarkKafkaConsume(b *testing.B) {
	url := testenv.Kafka(b)
	var r rates
	// Each variant drains a topic prefilled (untimed) with b.N messages in
	// the SDK's format, as a new consumer group reading from the start.
	prefill := func(b *testing.B) string {
		topic := createKafkaTopic(b, url)
		publishSDK(b, kafkaClient(b, url), topic)
		return topic
	}
	// The clock starts at the first message: joining a group takes a
	// rebalance whose length varies by hundreds of milliseconds from run to
	// run and would otherwise swamp the comparison.
	r.run(b, "raw", func(b *testing.B) {
		topic := prefill(b)
		cl := rawFranz(b, url, kgo.ConsumeTopics(topic), kgo.ConsumerGroup("g-"+uuid.NewString()[:8]),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitMarks(), kgo.FetchMaxWait(fetchWait))
		ctx := context.Background()
		got := 0
		for got < b.N {
			fetches := cl.PollRecords(ctx, 500)
			if err := fetches.Err0(); err != nil {
				b.Fatal(err)
			}
			records := fetches.Records()
			if got == 0 && len(records) > 0 {
				b.ResetTimer()
			}
			cl.MarkCommitRecords(records...)
			got += len(records)
		}
	})
	r.run(b, "raw-sarama", func(b *testing.B) {
		topic := prefill(b)
		cg, err := sarama.NewConsumerGroup(kafkaBrokers(url), "g-"+uuid.NewString()[:8], rawKafkaConfig())
		if err != nil {
			b.Fatal(err)
		}
		defer cg.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := groupHandler{seen: make(chan struct{}, 1024)}
		go func() {
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		}()
		<-h.seen
		b.ResetTimer()
		for i := 1; i < b.N; i++ {
			<-h.seen
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		topic := prefill(b)
		c := kafkaClient(b, url)
		seen := make(chan struct{}, 1024)
		// One handler per partition, as sarama runs ConsumeClaim per
		// partition in the raw variant.
		if _, err := c.Subscribe(context.Background(), topic, "g-"+uuid.NewString()[:8], func(context.Context, *sdk.Message) error {
			seen <- struct{}{}
			return nil
		}, sdk.WithConcurrency(kafkaPartitions)); err != nil {
			b.Fatal(err)
		}
		<-seen
		b.ResetTimer()
		for i := 1; i < b.N; i++ {
			<-seen
		}
	})
	r.report(b, "kafka consume")
}
