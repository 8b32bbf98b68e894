// Package testenv locates the brokers that adapter tests run against and
// decides what happens when one is missing: outside CI the test is skipped
// with instructions; under CI=true it fails, because a green run must mean
// the adapter was tested.
package testenv

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// Services as this machine runs them; each can be overridden by environment
// variable so the same tests run against another server.
const (
	DefaultRabbitMQURL = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultNATSURL     = "nats://127.0.0.1:4222"
)

// InCI reports whether the tests run under CI (CI=true), where a missing
// service is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Getenv returns the environment variable name, or def when it is unset.
func Getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// RequireTCP makes sure a service answers on addr (host:port). When it does
// not, the test fails under CI and is skipped elsewhere, naming the service
// and how to start it.
func RequireTCP(tb testing.TB, service, addr, howToStart string) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err == nil {
		conn.Close()
		return
	}
	msg := service + " is not reachable at " + addr + " (" + err.Error() + "); start it with: " + howToStart +
		" (scripts/services.sh up does this)"
	if InCI() {
		tb.Fatalf("CI=true and %s", msg)
	}
	tb.Skipf("skipping: %s", msg)
}

// RabbitMQ returns the AMQP URL for tests (MSGKIT_TEST_RABBITMQ_URL or the
// local default), after checking the broker answers.
func RabbitMQ(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "RabbitMQ", Getenv("MSGKIT_TEST_RABBITMQ_ADDR", "127.0.0.1:5672"), "rabbitmq-server -detached")
	return Getenv("MSGKIT_TEST_RABBITMQ_URL", DefaultRabbitMQURL)
}

// Redis returns the Redis URL for tests (MSGKIT_TEST_REDIS_URL or the local
// default), after checking the server answers.
func Redis(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "Redis", Getenv("MSGKIT_TEST_REDIS_ADDR", "127.0.0.1:6379"),
		`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`)
	return Getenv("MSGKIT_TEST_REDIS_URL", DefaultRedisURL)
}

// NATS returns the NATS URL for tests (MSGKIT_TEST_NATS_URL or the local
// default), after checking the server answers. The server must run with
// JetStream (-js).
func NATS(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "NATS", Getenv("MSGKIT_TEST_NATS_ADDR", "127.0.0.1:4222"),
		"start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log")
	return Getenv("MSGKIT_TEST_NATS_URL", DefaultNATSURL)
}

// Eventually polls cond every interval until it holds or timeout passes,
// then fails with what. It is for state with no signal to wait on (a broker
// coming back after a restart), never a replacement for one.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Postgres returns a PostgreSQL URL for tests (MSGKIT_TEST_POSTGRES_URL or
// the local trust-auth server's test database), after checking it answers.
func Postgres(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "PostgreSQL", Getenv("MSGKIT_TEST_POSTGRES_ADDR", "127.0.0.1:5432"),
		"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
	return Getenv("MSGKIT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// MySQL returns a MySQL/MariaDB DSN for tests (MSGKIT_TEST_MYSQL_DSN or the
// local server's test database), after checking it answers.
func MySQL(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "MariaDB", Getenv("MSGKIT_TEST_MYSQL_ADDR", "127.0.0.1:3306"),
		"start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")
	return Getenv("MSGKIT_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test")
}

// Kafka returns the Kafka URL for tests (MSGKIT_TEST_KAFKA_URL or the kfake
// emulator that scripts/services.sh starts on 127.0.0.1:19092), after
// checking a broker answers.
func Kafka(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "Kafka", Getenv("MSGKIT_TEST_KAFKA_ADDR", "127.0.0.1:19092"),
		"go run ./internal/emulator/kfake -port 19092")
	return Getenv("MSGKIT_TEST_KAFKA_URL", "kafka://127.0.0.1:19092")
}

// AWSEndpoint returns the SQS/SNS endpoint for tests (MSGKIT_TEST_AWS_ENDPOINT
// or the goaws emulator that scripts/services.sh starts on 127.0.0.1:4100),
// after checking it answers. An empty MSGKIT_TEST_AWS_ADDR with a real
// endpoint is not supported: tests always talk to a reachable host:port.
func AWSEndpoint(tb testing.TB) string {
	tb.Helper()
	RequireTCP(tb, "the SQS/SNS emulator (goaws)", Getenv("MSGKIT_TEST_AWS_ADDR", "127.0.0.1:4100"),
		"go run ./internal/emulator/goaws -addr 127.0.0.1:4100 -config internal/emulator/goaws/goaws.yaml")
	return Getenv("MSGKIT_TEST_AWS_ENDPOINT", "http://127.0.0.1:4100")
}

// AWSOptions are the sqs and sns drivers' options for tests on the
// emulator: static credentials (goaws accepts any), a "ct-" prefix, and
// short timings so redelivery tests stay fast; extra adds or overrides.
func AWSOptions(extra map[string]string) map[string]string {
	o := map[string]string{"region": "us-east-1", "access_key_id": "test", "secret_access_key": "test",
		"visibility_timeout": "5s", "wait_time": "1s", "prefix": "ct-"}
	maps.Copy(o, extra)
	return o
}

// ProxiedURL returns rawURL with its host:port replaced by proxy's answer
// for it (conformance.Harness.Proxied).
func ProxiedURL(rawURL string, proxy func(addr string) string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: ProxiedURL(%q): %v", rawURL, err))
	}
	u.Host = proxy(u.Host)
	return u.String()
}
