package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The crash tests run a consumer in a second process and kill it with
// SIGKILL while it holds a message it has not acked: no ack, no nack, no
// clean close, as when a pod is OOM-killed. The second process is the test
// binary itself, told by these environment variables what to consume.
const (
	dyingEnv      = "MSGKIT_TEST_DYING_CONSUMER"
	dyingURLEnv   = "MSGKIT_TEST_DYING_URL"
	dyingTopicEnv = "MSGKIT_TEST_DYING_TOPIC"
	dyingGroupEnv = "MSGKIT_TEST_DYING_GROUP"
)

// RunDyingConsumer belongs first in a TestMain. In a process started by
// StartDyingConsumer it opens the transport with open, subscribes, prints
// "ready", and on the first message prints "received <id>" and kills
// itself with SIGKILL; it never returns. In any other process it returns at
// once.
func RunDyingConsumer(open func(url string) (driver.Transport, error)) {
	if os.Getenv(dyingEnv) != "1" {
		return
	}
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(3)
	}
	tr, err := open(os.Getenv(dyingURLEnv))
	if err != nil {
		fail(err)
	}
	sub := sdk.NewWatermillSubscriber(tr, os.Getenv(dyingGroupEnv), nil)
	ch, err := sub.Subscribe(context.Background(), os.Getenv(dyingTopicEnv))
	if err != nil {
		fail(err)
	}
	fmt.Println("ready")
	m := <-ch
	fmt.Println("received", m.UUID)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// Helper is the test binary run a second time, as the process a crash test
// kills; the package's TestMain turns it into what the test needs, told by
// environment variables, and it reports on stdout, a line at a time.
type Helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// StartHelper starts the test binary, running no tests, with env added to
// its environment.
func StartHelper(t *testing.T, env ...string) *Helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &Helper{t: t, cmd: cmd, lines: bufio.NewScanner(stdout)}
}

// Line returns the helper's next line of output, or says that there is
// none.
func (h *Helper) Line() string {
	if !h.lines.Scan() {
		return "(nothing: " + fmt.Sprint(h.lines.Err()) + ")"
	}
	return h.lines.Text()
}

// WaitKilled waits for the helper to end, and fails the test unless
// SIGKILL ended it.
func (h *Helper) WaitKilled() {
	h.t.Helper()
	err := h.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		h.t.Fatalf("the helper process should die by SIGKILL, got %v", err)
	}
}

// DyingConsumer is the consumer process of a crash test.
type DyingConsumer struct{ *Helper }

// StartDyingConsumer starts the test binary as a consumer of topic in group
// at url (see RunDyingConsumer, which the package's TestMain must call) and
// returns once it has subscribed.
func StartDyingConsumer(t *testing.T, url, topic, group string) *DyingConsumer {
	t.Helper()
	d := &DyingConsumer{StartHelper(t, dyingEnv+"=1", dyingURLEnv+"="+url, dyingTopicEnv+"="+topic, dyingGroupEnv+"="+group)}
	if line := d.Line(); line != "ready" {
		t.Fatalf("the consumer process did not subscribe; it said %q (does TestMain call testenv.RunDyingConsumer?)", line)
	}
	return d
}

// Killed waits until the consumer has received a message and died by
// SIGKILL, and returns the id of the message it held.
func (d *DyingConsumer) Killed() string {
	d.t.Helper()
	line := d.Line()
	id, ok := strings.CutPrefix(line, "received ")
	if !ok {
		d.t.Fatalf("the consumer process should report the message it received; it said %q", line)
	}
	d.WaitKilled()
	return id
}
