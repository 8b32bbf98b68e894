package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/outbox"
	"github.com/msgkit/msgkit/sdk"
)

// The relay crash test runs a relay in a second process, the test binary
// itself, told by these variables where its outbox is.
const (
	dyingRelayEnv      = "MSGKIT_TEST_DYING_RELAY"
	dyingRelayDSNEnv   = "MSGKIT_TEST_DYING_RELAY_DSN"
	dyingRelayTableEnv = "MSGKIT_TEST_DYING_RELAY_TABLE"
)

func TestMain(m *testing.M) {
	if os.Getenv(dyingRelayEnv) == "1" {
		runDyingRelay()
	}
	os.Exit(m.Run())
}

// killOnPublish prints what it was given and kills its process with
// SIGKILL: a relay that dies holding its batch, with no rollback, no close,
// as when a pod is OOM-killed.
type killOnPublish struct{}

func (killOnPublish) Publish(_ context.Context, _ string, msgs ...*sdk.Message) error {
	fmt.Println("holding", len(msgs))
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// runDyingRelay is the second process: one RunOnce with a lease of an
// hour, killed in the middle.
func runDyingRelay() {
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(3)
	}
	db, err := sql.Open("pgx", os.Getenv(dyingRelayDSNEnv))
	if err != nil {
		fail(err)
	}
	store, err := outbox.New(db, outbox.Config{Dialect: outbox.Postgres, Table: os.Getenv(dyingRelayTableEnv)})
	if err != nil {
		fail(err)
	}
	relay, err := store.NewRelay(outbox.RelayConfig{Publisher: killOnPublish{}, Lease: time.Hour, PublishAttempts: 1})
	if err != nil {
		fail(err)
	}
	_, err = relay.RunOnce(context.Background())
	fail(fmt.Errorf("the relay returned instead of dying: %v", err))
}

// On PostgreSQL a relay holds its batch in a transaction, so when its
// process dies the server ends the transaction and another relay takes the
// batch at once, not after the lease (an hour here).
func TestRelayProcessKilledHoldingABatchFreesItAtOnce(t *testing.T) {
	e := newEnv(t, outbox.Postgres)
	got := e.consume("billing")
	e.order("o1", true, keyed("a", 1), keyed("a", 2), sdk.NewMessage([]byte("no key")))

	relay := testenv.StartHelper(t, dyingRelayEnv+"=1", dyingRelayDSNEnv+"="+testenv.Postgres(t), dyingRelayTableEnv+"="+e.table)
	if line := relay.Line(); line != "holding 3" {
		t.Fatalf("the relay process should hold the batch of 3 before it dies; it said %q", line)
	}
	relay.WaitKilled()
	killed := time.Now()

	survivor := e.relay(outbox.RelayConfig{Name: "survivor"})
	testenv.Eventually(t, 10*time.Second, "the survivor to publish the dead relay's batch, long before its one-hour lease", func() bool {
		if _, err := survivor.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		lag, err := e.store.Lag(context.Background())
		return err == nil && lag.Unsent == 0
	})
	t.Logf("the batch was free %v after the relay process died", time.Since(killed).Round(time.Millisecond))
	testenv.Eventually(t, 10*time.Second, "the three messages to be consumed", func() bool { return got.distinct() == 3 })
	got.checkOrder(t)
}
