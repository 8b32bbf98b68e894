package bench

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	_ "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func redisClient(b *testing.B, url string) *sdk.Client {
	c, err := sdk.Open(context.Background(), sdk.Config{Driver: "redis", URL: url}, sdk.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rawRedis(b *testing.B, url string) *goredis.Client {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	c := goredis.NewClient(opts)
	b.Cleanup(func() { c.Close() })
	return c
}

// rawXAdd adds n entries, batchSize per pipeline, each with the fields the
// SDK writes for a message with only an ID and a payload (id, payload and
// the ce-time header), so that both sides ask the same work of the server.
func rawXAdd(b *testing.B, c *goredis.Client, stream string, n int) {
	ctx := context.Background()
	for sent := 0; sent < n; {
		k := min(batchSize, n-sent)
		_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i := 0; i < k; i++ {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"id", uuid.NewString(), "payload", payload,
					"h:" + sdk.KeyTime, time.Now().UTC().Format(time.RFC3339Nano)}})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		sent += k
	}
}

func dropStream(b *testing.B, c *goredis.Client, stream string) {
	b.Cleanup(func() { c.Del(context.Background(), stream) })
}

func BenchmarkRedisPublish(b *testing.B) {
	url := testenv.Redis(b)
	var r rates
	r.run(b, "raw", func(b *testing.B) {
		c := rawRedis(b, url)
		stream := uniqueTopic("redis-pub")
		dropStream(b, c, stream)
		b.ResetTimer()
		rawXAdd(b, c, stream, b.N)
	})
	r.run(b, "sdk", func(b *testing.B) {
		stream := uniqueTopic("redis-pub")
		dropStream(b, rawRedis(b, url), stream)
		c := redisClient(b, url)
		b.ResetTimer()
		publishSDK(b, c, stream)
	})
	r.run(b, "watermill-redis", func(b *testing.B) {
		c := rawRedis(b, url)
		stream := uniqueTopic("redis-pub")
		dropStream(b, c, stream)
		pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: c}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for sent := 0; sent < b.N; {
			n := min(batchSize, b.N-sent)
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = message.NewMessage(uuid.NewString(), payload)
			}
			if err := pub.Publish(stream, msgs...); err != nil {
				b.Fatal(err)
			}
			sent += n
		}
	})
	r.report(b, "redis publish")
}

func BenchmarkRedisConsume(b *testing.B) {
	url := testenv.Redis(b)
	var r rates
	// Each variant creates its group at the start of a stream prefilled
	// (untimed) with b.N entries and drains it.
	prefill := func(b *testing.B, c *goredis.Client) string {
		stream := uniqueTopic("redis-sub")
		dropStream(b, c, stream)
		rawXAdd(b, c, stream, b.N)
		if err := c.XGroupCreate(context.Background(), stream, "g", "0").Err(); err != nil {
			b.Fatal(err)
		}
		return stream
	}
	r.run(b, "raw", func(b *testing.B) {
		c := rawRedis(b, url)
		stream := prefill(b, c)
		ctx := context.Background()
		b.ResetTimer()
		for got := 0; got < b.N; {
			res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 100, Block: time.Second}).Result()
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]string, len(res[0].Messages))
			for i, m := range res[0].Messages {
				ids[i] = m.ID
			}
			if err := c.XAck(ctx, stream, "g", ids...).Err(); err != nil {
				b.Fatal(err)
			}
			got += len(ids)
		}
	})
	r.run(b, "sdk", func(b *testing.B) {
		stream := prefill(b, rawRedis(b, url))
		c := redisClient(b, url)
		b.ResetTimer()
		consumeSDK(b, c, stream, "g", b.N)
	})
	r.run(b, "watermill-redis", func(b *testing.B) {
		// Prefilled through watermill-redisstream's own publisher: its
		// subscriber only reads its own (msgpack) entry format.
		c := rawRedis(b, url)
		stream := uniqueTopic("redis-sub")
		dropStream(b, c, stream)
		pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: c}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			if err := pub.Publish(stream, message.NewMessage(uuid.NewString(), payload)); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.XGroupCreate(context.Background(), stream, "g", "0").Err(); err != nil {
			b.Fatal(err)
		}
		sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: rawRedis(b, url), ConsumerGroup: "g"}, watermill.NopLogger{})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		b.ResetTimer()
		ch, err := sub.Subscribe(context.Background(), stream)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			(<-ch).Ack()
		}
	})
	r.report(b, "redis consume")
}
