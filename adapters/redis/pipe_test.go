package redis_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	msgredis "github.com/msgkit/msgkit/adapters/redis"
	"github.com/msgkit/msgkit/sdk"
)

// Concurrent publishes share one connection, the pipe: of the server's
// connections, exactly one has run XADD, however many publishers there
// are.
func TestConcurrentPublishesShareOneConnection(t *testing.T) {
	r := startPrivateRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, sdk.Config{Driver: "redis", URL: "redis://" + r.addr() + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for range 20 {
				if err := c.Publish(ctx, "orders", sdk.NewMessage([]byte("o"))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish: %v", err)
	}
	admin := rawClient(t, "redis://"+r.addr()+"/0")
	if n := admin.XLen(ctx, "orders").Val(); n != 64*20 {
		t.Fatalf("the stream has %d entries, want %d", n, 64*20)
	}
	list := admin.ClientList(ctx).Val()
	if n := strings.Count(list, "cmd=xadd"); n != 1 {
		t.Fatalf("%d connections ran XADD, want the one pipe:\n%s", n, list)
	}
	var pc rueidis.Client
	if !c.As(&pc) || pc == nil {
		t.Fatal("As(*rueidis.Client) does not reach the pipe")
	}
}

// When the server behind the client's address becomes a replica (a
// managed Redis's failover moves its DNS name to the new primary), the
// pipe's connection still reaches the demoted server, which refuses
// writes with READONLY: the pipe dials again, and the publish lands on
// the new primary within its deadline instead of failing.
func TestThePipeDialsAgainWhenItsServerBecomesAReplica(t *testing.T) {
	old, next := startPrivateRedis(t), startPrivateRedis(t)
	var target atomic.Value
	target.Store(old.addr())
	client := goredis.NewClient(&goredis.Options{Addr: "redis.example:6379", Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target.Load().(string))
	}})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := msgredis.New(ctx, client, msgredis.Options{PublishTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.NewClient(tr)
	defer c.Close(context.Background())
	if err := c.Publish(ctx, "orders", sdk.NewMessage([]byte("before"))); err != nil {
		t.Fatal(err)
	}

	host, port, _ := net.SplitHostPort(next.addr())
	demoted := rawClient(t, "redis://"+old.addr()+"/0")
	if err := demoted.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	// A replica refuses writes once it has started to sync from its
	// primary.
	for err := demoted.Set(ctx, "probe", "x", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY"); err = demoted.Set(ctx, "probe", "x", 0).Err() {
		if ctx.Err() != nil {
			t.Fatalf("the old server still takes writes: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // no signal: asking the server
	}
	target.Store(next.addr())
	pubCtx, cancelPub := context.WithTimeout(ctx, 15*time.Second)
	defer cancelPub()
	if err := c.Publish(pubCtx, "orders", sdk.NewMessage([]byte("after"))); err != nil {
		t.Fatalf("publish after the server became a replica: %v", err)
	}
	got, err := rawClient(t, "redis://"+next.addr()+"/0").XRange(ctx, "orders", "-", "+").Result()
	if err != nil || len(got) != 1 || got[0].Values["payload"] != "after" {
		t.Fatalf("the new primary has %v (%v), want the one entry published after the switch", got, err)
	}
}
