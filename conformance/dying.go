package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// The environment of the consumer process TestConsumerKilledBeforeAckHandsOver
// starts (the test binary again) and kills.
const (
	killedEnv      = "MSGKIT_CONFORMANCE_KILLED_CONSUMER"
	killedTopicEnv = "MSGKIT_CONFORMANCE_KILLED_TOPIC"
	killedGroupEnv = "MSGKIT_CONFORMANCE_KILLED_GROUP"
)

// KilledConsumerMain belongs first in the TestMain of a package whose
// Harness sets KilledConsumer. In the process the suite starts as a
// consumer to kill, it opens a transport with open (on the broker under
// test, with the driver's options the harness uses), subscribes, prints
// "ready", and on the first message prints "received <id>" and kills
// itself with SIGKILL: no ack, no nack, no Close, as when a pod is
// OOM-killed. In any other process it returns at once.
func KilledConsumerMain(open func(ctx context.Context) (driver.Transport, error)) {
	if os.Getenv(killedEnv) != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := open(ctx)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	ch, err := sdk.NewWatermillSubscriber(tr, os.Getenv(killedGroupEnv), nil).Subscribe(context.Background(), os.Getenv(killedTopicEnv))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	m := <-ch
	fmt.Println("received", m.UUID)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// testKilledConsumerHandsOver: a member killed while it holds a message it
// has not acked hands it over: another member of the group receives it
// (within Timeout, which must cover the driver's lease).
func testKilledConsumerHandsOver(e *env) {
	if !e.h.KilledConsumer {
		e.t.Skip("not run: Harness.KilledConsumer is not set (and TestMain must call conformance.KilledConsumerMain)")
	}
	group := uniqueName("g")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killedEnv+"=1", killedTopicEnv+"="+e.topic, killedGroupEnv+"="+group)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatalf("setup: %v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("setup: start the consumer process: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	next := func() string {
		if lines.Scan() {
			return lines.Text()
		}
		return "(nothing)"
	}
	if line := next(); line != "ready" {
		e.t.Fatalf("setup: the consumer process did not subscribe; it said %q (does TestMain call conformance.KilledConsumerMain first?)", line)
	}
	sent := newMsg("held by the killed member")
	e.publish(sent)
	line := next()
	if id, ok := strings.CutPrefix(line, "received "); !ok || id != sent.UUID {
		e.t.Fatalf("setup: the consumer process should receive message %s and die; it said %q", sent.UUID, line)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		e.t.Fatalf("setup: the consumer process should die by SIGKILL, got %v", err)
	}
	ch, _ := e.subscribe(group)
	const guarantee = "a message held by a member killed before it acked must reach another member of the group"
	if m := e.receive(ch, guarantee); m.UUID != sent.UUID {
		e.t.Fatalf("guarantee broken: %s: got message %s, want %s", guarantee, m.UUID, sent.UUID)
	}
}
