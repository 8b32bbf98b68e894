package redis

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// A server's reply decides whether a publish is sent again, never the
// words of the topic's name in the message that wraps it.
func TestRetryableFollowsTheServersReply(t *testing.T) {
	wrap := func(topic string, reply error) error {
		return fmt.Errorf("redis: publish to %q on redis at 127.0.0.1:6379 (db 0): %w", topic, reply)
	}
	transient := []string{
		"LOADING Redis is loading the dataset in memory",
		"BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
		"TRYAGAIN Multiple keys request during rehashing of slot",
		"CLUSTERDOWN The cluster is down",
		"READONLY You can't write against a read only replica.",
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		"NOREPLICAS Not enough good replicas to write.",
	}
	refusals := []string{
		"WRONGTYPE Operation against a key holding the wrong kind of value",
		"NOPERM User app has no permissions to run the 'xadd' command",
		"OOM command not allowed when used memory > 'maxmemory'.",
		"BUSYGROUP Consumer Group name already exists",
		"ERR The ID specified in XADD is equal or smaller than the target stream top item",
	}
	var tr Transport
	for _, reply := range transient {
		if err := wrap("orders", errors.New(reply)); !tr.IsRetryable(err) {
			t.Errorf("%q: want it sent again", reply)
		}
	}
	for _, reply := range refusals {
		for _, topic := range []string{"orders", "LOADING-dock", "READONLY", "connection refused", "broken pipe"} {
			if err := wrap(topic, errors.New(reply)); tr.IsRetryable(err) {
				t.Errorf("%q on topic %q: want it to fail at once", reply, topic)
			}
		}
	}
	if !tr.IsRetryable(wrap("orders", io.EOF)) {
		t.Error("a connection closed mid-reply (EOF): want it sent again")
	}
}
