package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishJetStream publishes payload to topic with only the given headers
// (none: nil), as a NATS producer that is not msgkit would: a
// conformance.Harness InjectRaw or InjectEvent.
func PublishJetStream(url string, header nats.Header) func(ctx context.Context, topic string, payload []byte) error {
	return func(ctx context.Context, topic string, payload []byte) error {
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.PublishMsg(ctx, &nats.Msg{Subject: topic, Data: payload, Header: header})
		return err
	}
}

// DeleteNATSStreams deletes the streams whose names start with one of
// prefixes (the conformance suite's topics make ct-* streams), within ten
// seconds; errors are ignored, as in test cleanup.
func DeleteNATSStreams(url string, prefixes ...string) {
	nc, err := nats.Connect(url)
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var doomed []string
	for n := range js.StreamNames(ctx).Name() {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				doomed = append(doomed, n)
				break
			}
		}
	}
	for _, n := range doomed {
		_ = js.DeleteStream(ctx, n)
	}
}

// NATSNode is one server of a private NATS cluster.
type NATSNode struct {
	Addr string // host:port of its client listener
	pid  int
}

// Kill stops the server with SIGKILL, as a crashed node stops.
func (n NATSNode) Kill(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(n.pid, syscall.SIGKILL); err != nil {
		t.Errorf("kill nats-server at %s: %v", n.Addr, err)
	}
}

// StartNATSCluster starts n nats-servers with JetStream, routed to each
// other as one cluster, on loopback, and waits until JetStream places a
// stream replicated on all of them. Each stops when the test ends.
func StartNATSCluster(t testing.TB, n int) []NATSNode {
	t.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		t.Fatalf("nats-server is not installed (apt-get install nats-server): %v", err)
	}
	dir := t.TempDir()
	client, route := make([]int, n), make([]int, n)
	var routes []string
	for i := range n {
		client[i], route[i] = FreePort(t), FreePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", route[i]))
	}
	nodes := make([]NATSNode, n)
	for i := range n {
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		text := fmt.Sprintf("server_name: msgkit-n%d\nlisten: \"127.0.0.1:%d\"\njetstream { store_dir: %q }\ncluster { name: msgkit, listen: \"127.0.0.1:%d\", routes: [%s] }\n",
			i, client[i], filepath.Join(dir, fmt.Sprintf("js%d", i)), route[i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		exited, out, pid := startProcess(t, "nats-server", "-c", conf)
		nodes[i] = NATSNode{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(client[i])), pid: pid}
		waitForNATS(t, nodes[i].Addr, exited, out)
	}
	Eventually(t, 30*time.Second, "the JetStream cluster to place a stream on all its servers", func() bool {
		nc, err := nats.Connect("nats://"+nodes[0].Addr, nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "msgkit-ready", Subjects: []string{"msgkit.ready"},
			Replicas: n, Storage: jetstream.MemoryStorage})
		if err != nil {
			return false
		}
		return js.DeleteStream(ctx, "msgkit-ready") == nil
	})
	return nodes
}

// waitForNATS waits until the server at addr greets (INFO, in plain text).
func waitForNATS(t testing.TB, addr string, exited <-chan struct{}, out *LockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil && strings.HasPrefix(line, "INFO") {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("nats-server exited before it listened on %s:\n%s", addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not greet on %s within 20s (last: %v):\n%s", addr, err, out.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a port: there is no signal to wait for
	}
}
