package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
)

func check(t *testing.T) {
	var out bytes.Buffer
	if err := run("", &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	trace := out.String()
	for _, want := range []string{
		"[billing] eur-invoice handled (attempt 1)",
		"[billing] chf-invoice failed (attempt 2)",
		"chf-invoice dead-lettered to",
		"garbled-invoice cannot be decoded -> permanent, straight to the DLQ",
		"garbled-invoice dead-lettered to",
		"replayed 2 message(s) back to",
		"[billing] chf-invoice handled",
		"[billing] garbled-invoice handled",
		"done: every invoice handled",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q:\n%s", want, trace)
		}
	}
}

func TestDeadLetterAndReplayOnMemory(t *testing.T) { check(t) }

func TestDeadLetterAndReplayOnRabbitMQ(t *testing.T) {
	t.Setenv("MESSAGING_DRIVER", "rabbitmq")
	t.Setenv("MESSAGING_URL", testenv.RabbitMQ(t))
	check(t)
}
