package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
)

func TestQuickstartTracesPublishConsumeRedeliveryDone(t *testing.T) {
	var out bytes.Buffer
	if err := run("", 10*time.Second, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	trace := out.String()
	for _, want := range []string{
		"opened driver=memory",
		`subscribed group "billing"`,
		`subscribed group "shipping"`,
		"published order-1",
		"[shipping] order-2 delivery 1: failed",
		"[shipping] order-2 delivery 2: order.created handled -> acked",
		"done: billing handled 3 orders, shipping handled 3 orders, 1 redelivery; client closed cleanly",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
	for _, order := range []string{"order-1", "order-2", "order-3"} {
		for _, group := range []string{"billing ", "shipping"} {
			re := regexp.MustCompile(regexp.QuoteMeta("["+group+"] "+order) + ` delivery \d: order.created handled -> acked`)
			if !re.MatchString(trace) {
				t.Errorf("%s was not handled by %s:\n%s", order, group, trace)
			}
		}
	}
}

func TestQuickstartReportsBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("driver: rabbitmq\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(path, time.Second, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `unknown driver "rabbitmq"`) && !strings.Contains(err.Error(), `key "url"`) {
		t.Fatalf("want an actionable config error, got %v", err)
	}
}

// The same program runs on a real broker by configuration alone.
func TestQuickstartRunsOnEveryBrokerByConfig(t *testing.T) {
	for _, c := range []struct{ driver string }{{"rabbitmq"}, {"redis"}} {
		t.Run(c.driver, func(t *testing.T) {
			url := testenv.RabbitMQ
			if c.driver == "redis" {
				url = testenv.Redis
			}
			t.Setenv("MESSAGING_DRIVER", c.driver)
			t.Setenv("MESSAGING_URL", url(t))
			var out bytes.Buffer
			if err := run("", 30*time.Second, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			trace := out.String()
			for _, want := range []string{"opened driver=" + c.driver, "[shipping] order-2 delivery 2: order.created handled -> acked", "done: billing handled 3 orders, shipping handled 3 orders"} {
				if !strings.Contains(trace, want) {
					t.Errorf("trace lacks %q:\n%s", want, trace)
				}
			}
		})
	}
}
