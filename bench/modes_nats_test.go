package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["nats"] = natsModes }

// natsModes: raw nats.go (jetstream), msgkit, and watermill-nats stock and
// tuned, all on file-stored streams with explicit acks.
func natsModes(b *testing.B) *broker {
	url := testenv.NATS(b)
	js := rawNATS(b, url)
	// Stock: the adapter's README settings: streams provisioned on publish
	// and subscribe, a durable queue subscription per group, sync acks.
	stock := wmnats.JetStreamConfig{AutoProvision: true, SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()},
		DurableCalculator: func(prefix, topic string) string { return prefix + "_" + topic }}
	// Tuned: no stream lookup on every publish (the stream exists before
	// the first), async acks, and room for 256 unacked messages a member.
	tuned := stock
	tuned.AutoProvision = false
	tuned.AckAsync = true
	tuned.SubscribeOptions = []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit(), nats.MaxAckPending(1024)}
	newPub := func(cfg wmnats.JetStreamConfig) message.Publisher {
		p, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: url, JetStream: cfg}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		closeLater(b, p)
		return p
	}
	newSub := func(cfg wmnats.JetStreamConfig, count int) func(topic, group string) (message.Subscriber, error) {
		return func(topic, group string) (message.Subscriber, error) {
			c := cfg
			c.DurablePrefix = group
			c.AutoProvision = true // the consumer, and the stream when the run starts with it
			return wmnats.NewSubscriber(wmnats.SubscriberConfig{URL: url, QueueGroupPrefix: group, SubscribersCount: count,
				JetStream: c}, watermill.NopLogger{})
		}
	}
	stockSys := watermillSystem("watermill-nats", newPub(stock), newSub(stock, 1), 1)
	tunedSys := watermillSystem("watermill tuned", newPub(tuned), newSub(tuned, 8), 1)
	// The tuned publisher finds its stream made by prepare, as a deployed
	// service finds it made by its operator.
	tunedSys.prepare = func(ctx context.Context, topic, group string) error {
		stop, err := tunedSys.consume(ctx, topic, group, func([]byte) {})
		if err != nil {
			return err
		}
		stop()
		return nil
	}
	return &broker{
		name: "NATS JetStream",
		newTopic: removedTopics(b, "nats-modes", func(t string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if name, err := js.StreamNameBySubject(ctx, t); err == nil {
				_ = js.DeleteStream(ctx, name)
			}
		}),
		systems: []*system{
			natsSystem(js),
			msgkitSystem("msgkit", natsClient(b, url)),
			stockSys,
			tunedSys,
		},
		ceiling: func(*testing.B) (float64, string) {
			return 0, "the raw client's batches are the limit here (no broker tool to measure it on this machine)"
		},
	}
}

// natsSystem: a JetStream publish per message, waiting for the stream's
// ack (async publishes and their acks awaited together for a batch); a
// durable pull consumer per group read with Consume, 100 messages a pull,
// an ack per message.
func natsSystem(js jetstream.JetStream) *system {
	stream := func(ctx context.Context, topic string) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: topic, Subjects: []string{topic}, Storage: jetstream.FileStorage})
	}
	consumer := func(ctx context.Context, topic, group string) (jetstream.Consumer, error) {
		s, err := stream(ctx, topic)
		if err != nil {
			return nil, err
		}
		return s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: group, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: topic})
	}
	msg := func(topic string, p []byte) *nats.Msg {
		return &nats.Msg{Subject: topic, Data: p, Header: nats.Header{
			"_watermill_message_uuid": {uuid.NewString()}, sdk.KeyTime: {time.Now().UTC().Format(time.RFC3339Nano)},
		}}
	}
	return &system{
		name: "nats.go",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			if len(payloads) == 1 {
				_, err := js.PublishMsg(ctx, msg(topic, payloads[0]))
				return err
			}
			acks := make([]jetstream.PubAckFuture, len(payloads))
			for i, p := range payloads {
				f, err := js.PublishMsgAsync(msg(topic, p))
				if err != nil {
					return err
				}
				acks[i] = f
			}
			for _, f := range acks {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
		prepare: func(ctx context.Context, topic, group string) error {
			_, err := consumer(ctx, topic, group)
			return err
		},
		consume: func(ctx context.Context, topic, group string, got func([]byte)) (func(), error) {
			c, err := consumer(ctx, topic, group)
			if err != nil {
				return nil, err
			}
			cc, err := c.Consume(func(m jetstream.Msg) {
				got(m.Data())
				_ = m.Ack()
			}, jetstream.PullMaxMessages(100))
			if err != nil {
				return nil, fmt.Errorf("consume: %w", err)
			}
			return cc.Stop, nil
		},
	}
}
