package rabbitmq_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
)

// The suite's persistence guarantee, with the shared broker restarted
// (rabbitmqctl stop_app, start_app, or $MSGKIT_TEST_RABBITMQ_RESTART).
func TestConformancePersistence(t *testing.T) {
	h := harness(testenv.RabbitMQ(t), map[string]string{"publish_timeout": "60s"})
	h.Only = []string{"TestPersistentMessagesSurviveARestart"}
	h.Restart = func(ctx context.Context) error {
		script := testenv.Getenv("MSGKIT_TEST_RABBITMQ_RESTART", "rabbitmqctl stop_app && rabbitmqctl start_app")
		if out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("restarting RabbitMQ with %q: %w\n%s", script, err, out)
		}
		return nil
	}
	conformance.Run(t, h)
}
