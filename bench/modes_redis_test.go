package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

func init() { modeBrokers["redis"] = redisModes }

// redisModes: raw go-redis, raw rueidis (auto-pipelining: the rate a
// client that coalesces concurrent commands reaches), msgkit, and
// watermill-redisstream stock and tuned.
func redisModes(b *testing.B) *broker {
	url := testenv.Redis(b)
	admin := rawRedis(b, url)
	tunedClient := goredis.NewClient(func() *goredis.Options { o := *admin.Options(); o.PoolSize = 64; return &o }())
	closeLater(b, tunedClient)
	stockPub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rawRedis(b, url)}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	tunedPub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: tunedClient}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	newTopic := removedTopics(b, "redis-modes", func(s string) { admin.Del(context.Background(), s) })
	return &broker{
		name:     "Redis",
		newTopic: newTopic,
		systems: []*system{
			goRedisSystem(rawRedis(b, url)),
			rueidisSystem(b, url),
			msgkitSystem("msgkit", redisClient(b, url)),
			watermillSystem("watermill-redisstream", stockPub, func(_, group string) (message.Subscriber, error) {
				// Its own client: Close closes the client it was given.
				return redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: goredis.NewClient(admin.Options()), ConsumerGroup: group}, watermill.NopLogger{})
			}, 1),
			// Tuned: a pool that fits 64 publishers, and 8 consumers in the
			// group (its subscriber handles one message at a time).
			watermillSystem("watermill tuned", tunedPub, func(_, group string) (message.Subscriber, error) {
				return redisstream.NewSubscriber(redisstream.SubscriberConfig{Client: goredis.NewClient(admin.Options()), ConsumerGroup: group}, watermill.NopLogger{})
			}, 8),
		},
		ceiling: func(b *testing.B) (float64, string) {
			return redisCeiling(newTopic(b))
		},
	}
}

// rawFields is what the SDK writes for a message with only a payload: its
// id, the payload and the ce-time header.
func rawFields(p []byte) []any {
	return []any{"id", uuid.NewString(), "payload", p, "h:" + sdk.KeyTime, time.Now().UTC().Format(time.RFC3339Nano)}
}

func redisGroup(ctx context.Context, c *goredis.Client, topic, group string) error {
	err := c.XGroupCreateMkStream(ctx, topic, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	return nil
}

// goRedisSystem: one XADD per message, a pipeline per batch; a consumer
// that reads 100 at a time and acks them with one XACK.
func goRedisSystem(c *goredis.Client) *system {
	return &system{
		name: "go-redis",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			if len(payloads) == 1 {
				return c.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: rawFields(payloads[0])}).Err()
			}
			_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, pl := range payloads {
					p.XAdd(ctx, &goredis.XAddArgs{Stream: topic, Values: rawFields(pl)})
				}
				return nil
			})
			return err
		},
		prepare: func(ctx context.Context, topic, group string) error { return redisGroup(ctx, c, topic, group) },
		consume: func(ctx context.Context, topic, group string, got func([]byte)) (func(), error) {
			if err := redisGroup(ctx, c, topic, group); err != nil {
				return nil, err
			}
			return loop(ctx, func(ctx context.Context) error {
				res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "c", Streams: []string{topic, ">"}, Count: 100, Block: 100 * time.Millisecond}).Result()
				if errors.Is(err, goredis.Nil) {
					return nil
				}
				if err != nil {
					return err
				}
				ids := make([]string, len(res[0].Messages))
				for i, m := range res[0].Messages {
					p, _ := m.Values["payload"].(string)
					got([]byte(p))
					ids[i] = m.ID
				}
				return c.XAck(ctx, topic, group, ids...).Err()
			}), nil
		},
	}
}

// loop runs step until stop is called; an error other than the stop's
// ends it early, reported on stop's return path by a panic-free log.
func loop(ctx context.Context, step func(ctx context.Context) error) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := step(ctx); err != nil && ctx.Err() == nil {
				fmt.Printf("consumer stopped: %v\n", err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

func rueidisSystem(b *testing.B, url string) *system {
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	xadd := func(topic string, p []byte) rueidis.Completed {
		return c.B().Xadd().Key(topic).Id("*").FieldValue().FieldValue("id", uuid.NewString()).
			FieldValue("payload", rueidis.BinaryString(p)).
			FieldValue("h:"+sdk.KeyTime, time.Now().UTC().Format(time.RFC3339Nano)).Build()
	}
	group := func(ctx context.Context, topic, group string) error {
		err := c.Do(ctx, c.B().XgroupCreate().Key(topic).Group(group).Id("0").Mkstream().Build()).Error()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return err
		}
		return nil
	}
	return &system{
		name: "rueidis",
		publish: func(ctx context.Context, topic string, payloads [][]byte) error {
			if len(payloads) == 1 {
				return c.Do(ctx, xadd(topic, payloads[0])).Error()
			}
			cmds := make(rueidis.Commands, len(payloads))
			for i, p := range payloads {
				cmds[i] = xadd(topic, p)
			}
			for _, r := range c.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return err
				}
			}
			return nil
		},
		prepare: group,
		consume: func(ctx context.Context, topic, g string, got func([]byte)) (func(), error) {
			if err := group(ctx, topic, g); err != nil {
				return nil, err
			}
			return loop(ctx, func(ctx context.Context) error {
				res, err := c.Do(ctx, c.B().Xreadgroup().Group(g, "c").Count(100).Block(100).Streams().Key(topic).Id(">").Build()).AsXRead()
				if rueidis.IsRedisNil(err) {
					return nil
				}
				if err != nil {
					return err
				}
				entries := res[topic]
				ids := make([]string, len(entries))
				for i, e := range entries {
					got([]byte(e.FieldValues["payload"]))
					ids[i] = e.ID
				}
				return c.Do(ctx, c.B().Xack().Key(topic).Group(g).Id(ids...).Build()).Error()
			}), nil
		},
	}
}

// redisBenchRate is the rps column of redis-benchmark --csv's result line.
var redisBenchRate = regexp.MustCompile(`^"XADD[^"]*","([0-9.]+)"`)

// redisCeiling is redis-benchmark's XADD rate with 64 connections and
// pipelines of 16: the server's own limit on this machine.
func redisCeiling(stream string) (float64, string) {
	how := "redis-benchmark XADD of 256 bytes, 64 connections, pipelines of 16, 200,000 requests"
	out, err := exec.Command("redis-benchmark", "-q", "--csv", "-c", "64", "-P", "16", "-n", "200000",
		"XADD", stream, "MAXLEN", "~", "100000", "*", "payload", strings.Repeat("x", 256)).CombinedOutput()
	if err != nil {
		return 0, how + ": " + err.Error()
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := redisBenchRate.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			if r, err := strconv.ParseFloat(m[1], 64); err == nil {
				return r, how
			}
		}
	}
	return 0, how + ": no rate in its output: " + string(out)
}
