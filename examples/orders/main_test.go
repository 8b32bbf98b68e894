package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
)

func check(t *testing.T, o options) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	trace := out.String()
	for _, want := range []string{
		"[orders]   POST /orders order-3: 422, order-3 rolled back -> its OrderCreated is never published",
		"[orders]   POST /orders order-1: 201, committed",
		"[shipping] order-1 received -> shipment created",
		"correlation req-order-1, same trace as its POST /orders: true",
		"[shipping] order-1 received again -> already in the inbox, nothing done",
		"done: 5 orders committed, 5 shipments, outbox lag 0",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	if strings.Contains(trace, "order-3 received") {
		t.Errorf("the rolled-back order was shipped:\n%s", trace)
	}
	return trace
}

func TestOrdersOnSQLiteAndMemory(t *testing.T) {
	check(t, options{db: "sqlite", orders: 5, timeout: 20 * time.Second})
}

func TestOrdersOnPostgresAndRabbitMQ(t *testing.T) {
	t.Setenv("MESSAGING_DRIVER", "rabbitmq")
	t.Setenv("MESSAGING_URL", testenv.RabbitMQ(t))
	trace := check(t, options{db: "postgres", dsn: testenv.Postgres(t), orders: 5, timeout: 30 * time.Second})
	if !strings.Contains(trace, "broker driver=rabbitmq") {
		t.Errorf("should have run on RabbitMQ:\n%s", trace)
	}
}

func TestOrdersOnMariaDBAndRedis(t *testing.T) {
	t.Setenv("MESSAGING_DRIVER", "redis")
	t.Setenv("MESSAGING_URL", testenv.Redis(t))
	check(t, options{db: "mysql", dsn: testenv.MySQL(t), orders: 5, timeout: 30 * time.Second})
}
