package nats_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	msgnats "github.com/msgkit/msgkit/adapters/nats"
	"github.com/msgkit/msgkit/conformance"
	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
	"github.com/msgkit/msgkit/sdk/driver"
)

// TestMain lets the test binary double as the consumer process that the
// crash test kills with SIGKILL while it holds an unacked message.
// killedOptions give the killed-consumer conformance run a short lease:
// the server redelivers what a dead member held after ack_wait.
var killedOptions = map[string]string{"ack_wait": "2s"}

func TestMain(m *testing.M) {
	conformance.KilledConsumerMain(func(ctx context.Context) (driver.Transport, error) {
		return msgnats.Driver{}.Open(ctx, sdk.Config{Driver: msgnats.DriverName, URL: testenv.Getenv("MSGKIT_TEST_NATS_URL", testenv.DefaultNATSURL), Options: killedOptions})
	})
	testenv.RunDyingConsumer(func(url string) (driver.Transport, error) {
		return msgnats.Driver{}.Open(context.Background(), sdk.Config{Driver: msgnats.DriverName, URL: url, Options: map[string]string{"ack_wait": "2s"}})
	})
	os.Exit(m.Run())
}

func names(prefix string) (topic, group string) {
	id := uuid.NewString()[:8]
	return "ct-" + prefix + "-" + id, "g-" + id
}

func client(t *testing.T, url string, options map[string]string) *sdk.Client {
	t.Helper()
	tr, err := open(t, url, options)
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.NewClient(tr)
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func rawJetStream(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// subscribe runs h for topic in group and returns the messages it saw.
func subscribe(t *testing.T, c *sdk.Client, topic, group string, h sdk.Handler) <-chan *sdk.Message {
	t.Helper()
	got := make(chan *sdk.Message, 100)
	_, err := c.Subscribe(context.Background(), topic, group, func(ctx context.Context, m *sdk.Message) error {
		got <- m
		return h(ctx, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func ok(context.Context, *sdk.Message) error { return nil }

// A message written by a plain NATS client, with no id header, gets an id
// that is the same on every redelivery (so an inbox can deduplicate it).
func TestMessageWithoutIDGetsOneStableAcrossRedeliveries(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("noid")
	c := client(t, url, nil)
	failed := false
	got := subscribe(t, c, topic, group, func(context.Context, *sdk.Message) error {
		if !failed {
			failed = true
			return errors.New("first delivery fails")
		}
		return nil
	})
	_, js := rawJetStream(t, url)
	if _, err := js.Publish(context.Background(), topic, []byte("from another producer")); err != nil {
		t.Fatal(err)
	}
	first := testenv.Await(t, got, "the message of the plain NATS client")
	again := testenv.Await(t, got, "its redelivery after the handler failed")
	if first.ID == "" || first.ID != again.ID {
		t.Fatalf("a message without an id must get one that stays the same on redelivery: got %q then %q", first.ID, again.ID)
	}
	if string(again.Payload) != "from another producer" {
		t.Fatalf("payload changed: %q", again.Payload)
	}
}

// Metadata whose keys are not valid NATS header names, or whose values a
// header line would change, arrives exactly as sent, and plain NATS
// clients see readable headers for the rest.
func TestMetadataThatHeadersCannotCarryArrivesExactly(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("meta")
	c := client(t, url, nil)
	got := subscribe(t, c, topic, group, ok)
	want := map[string]string{
		"plain":                 "value",
		"with:colon":            "x",
		"Nats-Msg-Id":           "must not reach the server as its own header",
		"Msgkit-B64-looks-like": "an encoded key",
		"lines":                 "one\r\ntwo\nthree",
		"edges":                 " \tpadded\t ",
		"word":                  "=?UTF-8?B?aGk=?=",
		"nul":                   "a\x00b",
		"":                      "empty key",
	}
	if err := c.Publish(context.Background(), topic, &sdk.Message{Payload: []byte("x"), Metadata: want}); err != nil {
		t.Fatal(err)
	}
	m := testenv.Await(t, got, "the message with odd metadata")
	for k, v := range want {
		if m.Metadata[k] != v {
			t.Errorf("metadata %q: sent %q, received %q", k, v, m.Metadata[k])
		}
	}
}

// A stream that a platform team made for many subjects is used as it is:
// the driver creates no stream of its own for a topic it captures.
func TestPlatformOwnedStreamIsUsed(t *testing.T) {
	url := testenv.NATS(t)
	id := uuid.NewString()[:8]
	stream, topic := "ct-platform-"+id, "ct-plat-"+id+".created"
	_, js := rawJetStream(t, url)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"ct-plat-" + id + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	c := client(t, url, nil)
	got := subscribe(t, c, topic, "g-"+id, ok)
	if err := c.Publish(ctx, topic, &sdk.Message{Payload: []byte("into the platform's stream")}); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, got, "a message published to a subject of the platform's stream")
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("the platform's stream should hold the message, holds %d", n)
	}
	for name := range js.StreamNames(ctx, jetstream.WithStreamListSubject(topic)).Name() {
		if name != stream {
			t.Fatalf("the driver created stream %q for a subject the platform's stream captures", name)
		}
	}
}

func TestTopicThatIsNotASubjectIsRefused(t *testing.T) {
	url := testenv.NATS(t)
	c := client(t, url, nil)
	for _, topic := range []string{"ct-a..b", "ct-a.*", "ct-a.>", "ct a", "ct-a.", "ct-a.b*c", "ct-a.b>"} {
		err := c.Publish(context.Background(), topic, &sdk.Message{Payload: []byte("x")})
		if !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), "not a NATS subject") {
			t.Errorf("publishing to %q: want an error saying it is not a NATS subject, got %v", topic, err)
		}
		_, err = c.Subscribe(context.Background(), topic, "g", func(context.Context, *sdk.Message) error { return nil })
		if !errors.Is(err, sdk.ErrInvalidName) || !strings.Contains(err.Error(), "not a NATS subject") {
			t.Errorf("subscribing to %q: want an error saying it is not a NATS subject, got %v", topic, err)
		}
	}
}

// A message too big for the server with its headers is refused before it
// is sent, and the connection carries on for the next one.
func TestMessageOverMaxPayloadIsRefusedAndTheConnectionSurvives(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("big")
	c := client(t, url, nil)
	got := subscribe(t, c, topic, group, ok)
	caps := c.Capabilities()
	// Within MaxMetadataBytes as the client counts it, but each key needs
	// encoding (it holds a space), which makes the headers several times
	// larger on the wire than the 64 KiB the declared payload limit leaves.
	meta := map[string]string{}
	for i, size := 0, 0; size+200 < caps.MaxMetadataBytes; i++ { // room for the standard attributes
		k := " " + strconv.Itoa(i)
		meta[k] = ""
		size += len(k)
	}
	err := c.Publish(context.Background(), topic, &sdk.Message{Payload: make([]byte, caps.MaxPayloadBytes), Metadata: meta})
	if !errors.Is(err, sdk.ErrPayloadTooLarge) || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("want ErrPayloadTooLarge naming max_payload, got %v", err)
	}
	if err := c.Publish(context.Background(), topic, &sdk.Message{Payload: []byte("small")}); err != nil {
		t.Fatalf("the next publish failed: %v", err)
	}
	if m := testenv.Await(t, got, "the message after the refused one"); string(m.Payload) != "small" {
		t.Fatalf("got %q", m.Payload)
	}
}

// New runs on the caller's connection, reaches it through As, and leaves
// it open on Close.
func TestNewUsesTheCallersConnection(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("own")
	nc, _ := rawJetStream(t, url)
	var ce *sdk.ConfigError
	if _, err := msgnats.New(context.Background(), nc, msgnats.Options{Replicas: 7}); !errors.As(err, &ce) || ce.Key != "options.replicas" {
		t.Fatalf("seven replicas must be a ConfigError naming options.replicas, got %v", err)
	}
	tr, err := msgnats.New(context.Background(), nc, msgnats.Options{BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTestStreams(url) })
	c := sdk.NewClient(tr)
	var got *nats.Conn
	if !c.As(&got) || got != nc {
		t.Fatal("As(**nats.Conn) should reach the caller's connection")
	}
	testenv.RoundTrip(t, tr, topic+"."+group)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("Close closed the caller's connection")
	}
}

// A consumer killed while it holds a message loses nothing: the message
// goes to another member once ack_wait has passed.
func TestConsumerKilledBeforeAckIsRedeliveredToAnotherMember(t *testing.T) {
	url := testenv.NATS(t)
	topic, group := names("crash")
	c := client(t, url, map[string]string{"ack_wait": "2s"})
	dying := testenv.StartDyingConsumer(t, url, topic, group)
	if err := c.Publish(context.Background(), topic, &sdk.Message{ID: "held-by-the-dead", Payload: []byte("work")}); err != nil {
		t.Fatal(err)
	}
	if held := dying.Killed(); held != "held-by-the-dead" {
		t.Fatalf("the killed consumer should have held the message, held %q", held)
	}
	got := subscribe(t, c, topic, group, ok)
	if m := testenv.Await(t, got, "the dead consumer's message, after ack_wait"); m.ID != "held-by-the-dead" {
		t.Fatalf("got %q", m.ID)
	}
}

// A server without JetStream is named as such at Open.
func TestServerWithoutJetStreamIsRefusedAtOpen(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		if testenv.InCI() {
			t.Fatal("CI=true and nats-server is not installed")
		}
		t.Skip("nats-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	testenv.Eventually(t, 10*time.Second, "the private nats-server to listen", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = msgnats.Driver{}.Open(ctx, sdk.Config{Driver: msgnats.DriverName, URL: "nats://" + addr})
	if err == nil || !strings.Contains(err.Error(), "has no JetStream") {
		t.Fatalf("want an error saying the server has no JetStream, got %v", err)
	}
}
