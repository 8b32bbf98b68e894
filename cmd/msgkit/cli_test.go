package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/middleware"
	"github.com/msgkit/msgkit/sdk"
)

// binary is the msgkit command built once for the tests: they run it as a
// user does, as a process, with a config file.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "msgkit-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "msgkit")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build msgkit:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the built binary with one config file.
type cli struct {
	t      *testing.T
	config string
}

func newCLI(t *testing.T, cfg map[string]any) cli {
	path := filepath.Join(t.TempDir(), "msgkit.yaml")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cli{t: t, config: path}
}

// env is the environment of the binary: the test's, without MESSAGING_*.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESSAGING_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func (c cli) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, append([]string{"--config", c.config}, args...)...)
	cmd.Env = cliEnv()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs one command to its end (bounded at two minutes) and returns its
// output and exit code.
func (c cli) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := c.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("msgkit %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		c.t.Fatalf("msgkit %s did not end within 2 minutes; stderr: %s", strings.Join(args, " "), errOut.String())
	}
	return out.String(), errOut.String(), code
}

// must runs a command that must succeed.
func (c cli) must(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(stdin, args...)
	if code != 0 {
		c.t.Fatalf("msgkit %s: exit %d, want 0; stderr:\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// client opens an sdk client on the same config, for the services the
// commands talk to.
func (c cli) client() *sdk.Client {
	c.t.Helper()
	cfg, err := sdk.LoadConfig(c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := sdk.Open(ctx, cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = client.Close(context.Background()) })
	return client
}

func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var all []T
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		all = append(all, v)
	}
	return all
}

func unique(prefix string) string { return prefix + "-" + sdk.NewMessage(nil).ID[:8] }

// brokers are the configs the end-to-end tests run on.
func brokers(t *testing.T) map[string]map[string]any {
	return map[string]map[string]any{
		"rabbitmq": {"driver": "rabbitmq", "url": testenv.RabbitMQ(t)},
		"redis":    {"driver": "redis", "url": testenv.Redis(t)},
	}
}

func TestPublishAndTail(t *testing.T) {
	for name, cfg := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			c := newCLI(t, cfg)
			topic := unique("cli-tail")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			tail := c.command(ctx, "tail", topic, "--json", "-v")
			stdout, err := tail.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stderr, err := tail.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := tail.Start(); err != nil {
				t.Fatal(err)
			}
			errLines := lines(stderr)
			group := ""
			for group == "" {
				line := testenv.Await(t, errLines, "tail saying which group it reads through")
				if _, g, ok := strings.Cut(line, "as group "); ok {
					group = strings.Trim(g, `"`)
				}
			}
			binary := []byte{0, 0xff, 0xfe, 'x', '\n'}
			id := strings.TrimSpace(c.must(string(binary), "publish", topic, "--type", "order.created", "--key", "k1", "--header", "city=Zürich"))
			outLines := lines(stdout)
			var got jsonMessage
			if err := json.Unmarshal([]byte(testenv.Await(t, outLines, "the published message on tail's stdout")), &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != id || got.Metadata["city"] != "Zürich" || got.Metadata[sdk.KeyEventType] != "order.created" || got.Metadata[sdk.KeyOrderingKey] != "k1" {
				t.Fatalf("tail printed %+v, want id %s with city, type and ordering key", got, id)
			}
			if got.PayloadBase64 == nil || got.Payload != nil {
				t.Fatalf("a binary payload must be printed as payload_base64, got %+v", got)
			}
			if b, _ := base64.StdEncoding.DecodeString(*got.PayloadBase64); !bytes.Equal(b, binary) {
				t.Fatalf("payload %q, want %q", b, binary)
			}
			text := strings.TrimSpace(c.must("", "publish", topic, "--data", "plain text"))
			if err := json.Unmarshal([]byte(testenv.Await(t, outLines, "the second message")), &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != text || got.Payload == nil || *got.Payload != "plain text" {
				t.Fatalf("a text payload must be printed as payload, got %+v", got)
			}
			if err := tail.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			if err := tail.Wait(); err != nil {
				t.Fatalf("tail must exit 0 on Ctrl-C, got %v", err)
			}
			if groupExists(t, name, cfg["url"].(string), topic, group) {
				t.Fatalf("tail's temporary group %q of %q is still on the broker after it stopped", group, topic)
			}
		})
	}
}

// lines sends r's lines on a channel until it ends.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// groupExists asks the broker itself whether group's objects on topic exist.
func groupExists(t *testing.T, driverName, url, topic, group string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch driverName {
	case "redis":
		opts, err := goredis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		rc := goredis.NewClient(opts)
		defer rc.Close()
		groups, err := rc.XInfoGroups(ctx, topic).Result()
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(groups, func(g goredis.XInfoGroup) bool { return g.Name == group })
	case "rabbitmq":
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(topic+"."+group, true, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	}
	t.Fatalf("no way to look at groups on %s", driverName)
	return false
}

// deadLetters runs a service on topic whose handler refuses each message
// the first time (permanently, so it is dead-lettered at once) and accepts
// it when it comes back; it returns the ids of n dead-lettered messages
// and a channel of the ids handled after a replay.
func deadLetters(t *testing.T, c cli, topic string, n int) ([]string, <-chan string) {
	t.Helper()
	client := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	dead := make(chan string, n)
	replayed := make(chan string, n)
	_, err := client.Subscribe(ctx, topic, "billing", middleware.Chain(func(_ context.Context, m *sdk.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if seen[m.ID] {
			replayed <- m.ID
			return nil
		}
		seen[m.ID] = true
		return sdk.Permanent(fmt.Errorf("invoice %s: currency not supported", m.Payload))
	}, middleware.DeadLetter(middleware.DeadLetterConfig{Publisher: client, MaxDeliveries: 1,
		OnDeadLetter: func(m *sdk.Message, _ string, _ error) { dead <- m.ID }})))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < n; i++ {
		m := sdk.NewMessage([]byte(fmt.Sprintf("inv-%d", i)))
		if err := client.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	for range ids {
		testenv.Await(t, dead, "a message dead-lettered by the service")
	}
	return ids, replayed
}

func listed(t *testing.T, c cli, topic, wait string) []string {
	t.Helper()
	var ids []string
	for _, dl := range jsonLines[deadLetter](t, c.must("", "dlq", "list", topic, "--json", "--wait", wait)) {
		if dl.OriginalTopic != topic || !strings.Contains(dl.Error, "currency not supported") || !dl.Permanent || dl.Group != "billing" || dl.Time.IsZero() {
			t.Errorf("dlq list: %+v lacks where it came from, why, the group or since when", dl)
		}
		ids = append(ids, dl.ID)
	}
	slices.Sort(ids)
	return ids
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestDeadLetters(t *testing.T) {
	all := brokers(t)
	all["sns"] = map[string]any{"driver": "sns", "url": testenv.AWSEndpoint(t), "options": testenv.AWSOptions(nil)}
	for name, cfg := range all {
		t.Run(name, func(t *testing.T) {
			c := newCLI(t, cfg)
			topic := unique("cli-invoices")
			// How long a command waits for dead letters. On SQS, a long
			// poll in flight when a command's subscription stops can take
			// the messages it hands back, and when its answer comes after
			// the stop they stay invisible for the visibility timeout (5s
			// here; docs/adapters/sqs.md): the next command waits that out.
			wait := "1s"
			if name == "sns" {
				wait = "6s"
			}
			ids, replayed := deadLetters(t, c, topic, 3)
			if got := listed(t, c, topic, wait); !slices.Equal(got, sorted(ids)) {
				t.Fatalf("dlq list: %v, want %v", got, sorted(ids))
			}
			if got := listed(t, c, topic, wait); !slices.Equal(got, sorted(ids)) {
				t.Fatalf("a second dlq list must show the same dead letters (list consumes nothing): %v, want %v", got, sorted(ids))
			}
			text := c.must("", "dlq", "list", topic, "--wait", wait)
			if !strings.Contains(text, "ID") || !strings.Contains(text, ids[0]) || !strings.Contains(text, "permanent: ") {
				t.Fatalf("dlq list's table lacks the header, an id or the error:\n%s", text)
			}

			show := c.must("", "dlq", "show", topic, ids[1], "--wait", wait)
			if !strings.Contains(show, "id: "+ids[1]) || !strings.Contains(show, "payload: inv-1") || !strings.Contains(show, middleware.KeyDLQError+": ") {
				t.Fatalf("dlq show lacks the id, payload or error:\n%s", show)
			}
			if _, errOut, code := c.run("", "dlq", "show", topic, "no-such-id", "--wait", wait); code != exitNotFound || !strings.Contains(errOut, "no-such-id") {
				t.Fatalf("dlq show of an unknown id: exit %d (want %d), stderr %q", code, exitNotFound, errOut)
			}

			dry := jsonLines[deadLetter](t, c.must("", "dlq", "replay", topic, "--dry-run", "--json", "--wait", wait))
			if len(dry) != 3 {
				t.Fatalf("dry run listed %d, want 3", len(dry))
			}
			if got := listed(t, c, topic, wait); len(got) != 3 {
				t.Fatalf("a dry run must move nothing: %d left, want 3", len(got))
			}
			select {
			case id := <-replayed:
				t.Fatalf("%s reached the service after a dry run", id)
			default:
			}

			out := c.must("", "dlq", "replay", topic, "--id", ids[2], "--wait", wait)
			if strings.TrimSpace(out) != ids[2] {
				t.Fatalf("replay --id printed %q, want %s", out, ids[2])
			}
			if got := testenv.Await(t, replayed, "the replayed message at the service"); got != ids[2] {
				t.Fatalf("the service got %s back, want %s", got, ids[2])
			}
			if got := listed(t, c, topic, wait); !slices.Equal(got, sorted(ids[:2])) {
				t.Fatalf("after replaying one: %v left, want %v", got, sorted(ids[:2]))
			}
			if _, errOut, code := c.run("", "dlq", "replay", topic, "--id", "no-such-id", "--wait", wait); code != exitNotFound || !strings.Contains(errOut, "no-such-id") {
				t.Fatalf("replay of an unknown id: exit %d (want %d), stderr %q", code, exitNotFound, errOut)
			}
			if got := listed(t, c, topic, wait); len(got) != 2 {
				t.Fatalf("a replay of an unknown id must move nothing: %d left, want 2", len(got))
			}

			out = c.must("", "dlq", "replay", topic, "--wait", wait)
			if got := sorted(strings.Fields(out)); !slices.Equal(got, sorted(ids[:2])) {
				t.Fatalf("replay printed %v, want %v", got, sorted(ids[:2]))
			}
			back := []string{testenv.Await(t, replayed, "a replayed message"), testenv.Await(t, replayed, "a replayed message")}
			if !slices.Equal(sorted(back), sorted(ids[:2])) {
				t.Fatalf("the service got %v back, want %v", back, ids[:2])
			}
			if got := listed(t, c, topic, wait); len(got) != 0 {
				t.Fatalf("after replaying all: %v left", got)
			}
			if _, _, code := c.run("", "dlq", "replay", topic, "--wait", wait); code != exitNotFound {
				t.Fatalf("replay of an empty dead-letter topic: exit %d, want %d", code, exitNotFound)
			}
		})
	}
}

// TestDeadLettersOnKafka: Kafka's dead letters are read from the topic's
// log through a temporary group, and replayed in order.
func TestDeadLettersOnKafka(t *testing.T) {
	c := newCLI(t, map[string]any{"driver": "kafka", "url": testenv.Kafka(t)})
	topic := unique("cli-invoices")
	ids, replayed := deadLetters(t, c, topic, 3)
	for range 2 {
		if got := listed(t, c, topic, "1s"); !slices.Equal(got, sorted(ids)) {
			t.Fatalf("dlq list: %v, want %v", got, sorted(ids))
		}
	}
	if _, errOut, code := c.run("", "dlq", "replay", topic, "--id", ids[0], "--wait", "1s"); code != exitUsage || !strings.Contains(errOut, "in order") {
		t.Fatalf("replay --id on Kafka: exit %d (want %d), stderr %q", code, exitUsage, errOut)
	}
	out := c.must("", "dlq", "replay", topic, "--wait", "1s")
	if got := sorted(strings.Fields(out)); !slices.Equal(got, sorted(ids)) {
		t.Fatalf("replay printed %v, want %v", got, sorted(ids))
	}
	for range ids {
		testenv.Await(t, replayed, "a replayed message at the service")
	}
	if _, _, code := c.run("", "dlq", "replay", topic, "--wait", "1s"); code != exitNotFound {
		t.Fatalf("a second replay: exit %d, want %d (nothing left for the replay group)", code, exitNotFound)
	}
}

func TestRequest(t *testing.T) {
	c := newCLI(t, brokers(t)["redis"])
	client := c.client()
	topic := unique("cli-prices")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := client.Respond(ctx, topic, "pricing", func(_ context.Context, req *sdk.Message) (*sdk.Message, error) {
		if string(req.Payload) == "B2" {
			return nil, sdk.Reject("out_of_stock", "B2 is sold out")
		}
		return sdk.NewMessage([]byte("price of " + string(req.Payload) + ": 12.50")), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := c.must("A1", "request", topic, "--timeout", "20s"); out != "price of A1: 12.50" {
		t.Fatalf("request printed %q", out)
	}
	_, errOut, code := c.run("", "request", topic, "--data", "B2", "--timeout", "20s")
	if code != exitRemoteError || !strings.Contains(errOut, "out_of_stock") || !strings.Contains(errOut, "sold out") {
		t.Fatalf("a refused request: exit %d (want %d), stderr %q", code, exitRemoteError, errOut)
	}
	_, errOut, code = c.run("", "request", unique("cli-nobody"), "--data", "x", "--timeout", "1s")
	if code != exitFailed || !strings.Contains(errOut, "deadline") {
		t.Fatalf("a request nobody answers: exit %d (want %d), stderr %q", code, exitFailed, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("driver: rabbitmq\nurl: amqp://app:s3cret@mq.internal:5672/prod\noptions:\n  prefetch: 50\n"), 0o600)
	os.WriteFile(bad, []byte("driver: rabbitmq\nurl: amqp://app:s3cret@mq.internal:5672/prod\noptions:\n  prefetch: 50\n  prefech_count: 3\n"), 0o600)
	c := cli{t: t, config: good}
	out := c.must("", "config", "check", good)
	if !strings.Contains(out, "ok") || strings.Contains(out, "s3cret") {
		t.Fatalf("config check of a good file: %q (must say ok and never show the password)", out)
	}
	_, errOut, code := c.run("", "config", "check", bad)
	if code != exitUsage || !strings.Contains(errOut, "bad.yaml:5") || !strings.Contains(errOut, "prefech_count") || strings.Contains(errOut, "s3cret") {
		t.Fatalf("config check of a bad option: exit %d (want %d), stderr %q: want the key and file:line, never the password", code, exitUsage, errOut)
	}
	if _, errOut, code := c.run("", "config", "check", filepath.Join(dir, "missing.yaml")); code != exitUsage || !strings.Contains(errOut, "missing.yaml") {
		t.Fatalf("config check of a missing file: exit %d, stderr %q", code, errOut)
	}
	cmd := exec.Command(binary, "config", "check", good)
	cmd.Env = cliEnv("MESSAGING_OPT_PREFETCH=many")
	b, err := cmd.CombinedOutput()
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(b), "MESSAGING_OPT_PREFETCH") {
		t.Fatalf("a bad value from the environment must name the variable: %v, %s", err, b)
	}
}

func TestDoctor(t *testing.T) {
	for name, cfg := range brokers(t) {
		t.Run(name, func(t *testing.T) {
			c := newCLI(t, cfg)
			var r report
			if err := json.Unmarshal([]byte(c.must("", "doctor", "--json")), &r); err != nil {
				t.Fatal(err)
			}
			wantProduct := map[string]string{"rabbitmq": "RabbitMQ", "redis": "Redis"}[name]
			if !r.Reachable || !strings.Contains(r.Broker, wantProduct) || !r.Capabilities.ConsumerGroups || r.TLS != "off (plain connection)" {
				t.Fatalf("doctor: %+v", r)
			}
			text := c.must("", "doctor")
			if !strings.Contains(text, "consumer groups:") || !strings.Contains(text, "reachable:    yes") {
				t.Fatalf("doctor's text report:\n%s", text)
			}
		})
	}
	port := testenv.FreePort(t)
	c := newCLI(t, map[string]any{"driver": "redis", "url": fmt.Sprintf("redis://:hunter2@127.0.0.1:%d/0", port)})
	out, errOut, code := c.run("", "doctor", "--timeout", "3s")
	if code != exitUnreachable || !strings.Contains(out, "reachable:    no") || strings.Contains(out+errOut, "hunter2") {
		t.Fatalf("doctor on a closed port: exit %d (want %d), stdout %q, stderr %q (the password must not appear)", code, exitUnreachable, out, errOut)
	}
	c = newCLI(t, map[string]any{"driver": "redis", "url": "redis://127.0.0.1:6379/0", "options": map[string]any{"no_such_option": 1}})
	if _, errOut, code := c.run("", "doctor"); code != exitUsage || !strings.Contains(errOut, "no_such_option") {
		t.Fatalf("doctor with a bad option: exit %d (want %d), stderr %q", code, exitUsage, errOut)
	}
}

func TestTailNeedsAGroupWhereGroupsCannotBeRemoved(t *testing.T) {
	cfg := map[string]any{"driver": "sqs", "url": testenv.AWSEndpoint(t), "options": testenv.AWSOptions(nil)}
	c := newCLI(t, cfg)
	if _, errOut, code := c.run("", "tail", unique("cli-q")); code != exitUsage || !strings.Contains(errOut, "--group") {
		t.Fatalf("tail without --group on SQS: exit %d (want %d), stderr %q", code, exitUsage, errOut)
	}
	// With --group it consumes as a member, and stops by itself with --count.
	topic := unique("cli-q")
	id := strings.TrimSpace(c.must("", "publish", topic, "--data", "x"))
	out := c.must("", "tail", topic, "--group", "ops", "--count", "1", "--json")
	if got := jsonLines[jsonMessage](t, out); len(got) != 1 || got[0].ID != id {
		t.Fatalf("tail --group --count 1 printed %q, want message %s", out, id)
	}
}

func TestConformanceCommand(t *testing.T) {
	c := newCLI(t, brokers(t)["redis"])
	out, errOut, code := c.run("", "conformance", "--run", "^(TestPublishSubscribeRoundTrip|TestEveryGroupReceivesEveryMessage|TestRemovedGroupKeepsNothing|TestPersistentMessagesSurviveARestart)$", "--json")
	if code != 0 {
		t.Fatalf("conformance: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	got := map[string]string{}
	for _, r := range jsonLines[result](t, out) {
		got[r.Name] = r.Outcome
		if r.Outcome == "not checked" && !strings.Contains(strings.Join(r.Details, " "), "Persistent not declared") {
			t.Errorf("a guarantee not checked must say why: %+v", r)
		}
	}
	want := map[string]string{"TestPublishSubscribeRoundTrip": "holds", "TestEveryGroupReceivesEveryMessage": "holds",
		"TestRemovedGroupKeepsNothing": "holds", "TestPersistentMessagesSurviveARestart": "not checked"}
	if !maps.Equal(got, want) {
		t.Fatalf("conformance results %v, want %v\nstderr:\n%s", got, want, errOut)
	}
}

// TestConformanceCommandReportsABrokenGuarantee: a Redis member killed
// while it holds a message hands it over only after claim_idle (30s by
// default), so a suite told to wait 2s must report that guarantee broken,
// say what it saw, and exit 1.
func TestConformanceCommandReportsABrokenGuarantee(t *testing.T) {
	c := newCLI(t, brokers(t)["redis"])
	out, errOut, code := c.run("", "conformance", "--run", "^TestConsumerKilledBeforeAckHandsOver$", "--wait", "2s")
	if code != exitFailed || !strings.Contains(out, "BROKEN       ConsumerKilledBeforeAckHandsOver") || !strings.Contains(out, "guarantee broken") ||
		!strings.Contains(errOut, "1 guarantee(s) broken") {
		t.Fatalf("conformance with a wait shorter than the lease: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, exitFailed, out, errOut)
	}
}

func TestUsageErrors(t *testing.T) {

	for _, args := range [][]string{{"publish"}, {"tail", "a", "--from", "middle"}, {"nosuch"}, {"publish", "t", "--header", "novalue"}, {"dlq", "show", "t"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = cliEnv()
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("msgkit %s: %v, want exit %d; output %s", strings.Join(args, " "), err, exitUsage, b)
		}
	}

	for _, args := range [][]string{{"--help"}, {"publish", "--help"}, {"tail", "--help"}, {"dlq", "--help"}, {"dlq", "list", "--help"}, {"dlq", "show", "--help"}, {"dlq", "replay", "--help"}, {"config", "--help"}, {"request", "--help"}, {"config", "check", "--help"}, {"doctor", "--help"}, {"conformance", "--help"}} {
		cmd := exec.Command(binary, args...)
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "Example") && !strings.Contains(string(b), "Examples") {
			t.Errorf("msgkit %s: %v; every command's help must show an example:\n%s", strings.Join(args, " "), err, b)
		}
	}

}

// A header given twice, or one that a flag sets too, is a usage error
// naming it, not one value silently dropped.
func TestPublishRefusesAHeaderGivenTwice(t *testing.T) {
	c := newCLI(t, map[string]any{"driver": "memory"})
	for _, args := range [][]string{
		{"--header", "tenant=a", "--header", "tenant=b"},
		{"--type", "order.created", "--header", "ce-type=order.paid"},
		{"--key", "c-7", "--header", "ordering-key=c-8"},
	} {
		_, errOut, code := c.run("", append([]string{"publish", "orders", "--data", "x"}, args...)...)
		if code != exitUsage || !strings.Contains(errOut, "--header") || !(strings.Contains(errOut, "given twice") || strings.Contains(errOut, "give one of them")) {
			t.Errorf("publish %v: exit %d (want %d), stderr %q", args, code, exitUsage, errOut)
		}
	}
	if _, errOut, code := c.run("", "publish", "orders", "--data", "x", "--header", "ce-type=order.paid"); code != 0 {
		t.Fatalf("a standard attribute given only as a header is taken: exit %d, stderr %q", code, errOut)
	}
}
