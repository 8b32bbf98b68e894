package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// RabbitMQSpec describes a private RabbitMQ node a test starts beside the
// shared one (which is never reconfigured).
type RabbitMQSpec struct {
	// TLS, when set, adds a TLS listener with its server certificate.
	TLS *TLSFiles
	// RequireClientCert makes the TLS listener require a client
	// certificate signed by TLS.CA.
	RequireClientCert bool
	// NoPlainListener leaves only the TLS listener.
	NoPlainListener bool
	// ExtraConfig is appended to the node's rabbitmq.conf.
	ExtraConfig string
}

// RabbitMQNode is a running private node.
type RabbitMQNode struct {
	Name     string // NAME@localhost, for rabbitmqctl -n
	AMQPAddr string // 127.0.0.1:port of the plain listener, "" without one
	TLSAddr  string // 127.0.0.1:port of the TLS listener, "" without one
	dir      string
	env      []string
}

var rabbitNodes atomic.Int64

// StartRabbitMQ starts a private node on loopback ports of its own, waits
// (up to 60 s) until it runs, and stops it and removes its files when the
// test ends. A node starts in 10-20 s on this machine.
func StartRabbitMQ(t testing.TB, spec RabbitMQSpec) *RabbitMQNode {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatalf("rabbitmq-server is not installed (apt-get install rabbitmq-server): %v", err)
	}
	// The node runs as the rabbitmq user: its directory must be reachable
	// by it, which a test's 0700 TempDir parent is not.
	dir, err := os.MkdirTemp("", "msgkit-rabbit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &RabbitMQNode{Name: fmt.Sprintf("msgkit%d_%d@localhost", os.Getpid(), rabbitNodes.Add(1)), dir: dir}
	var conf strings.Builder
	if spec.NoPlainListener {
		conf.WriteString("listeners.tcp = none\n")
	} else {
		n.AMQPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		fmt.Fprintf(&conf, "listeners.tcp.local = %s\n", n.AMQPAddr)
	}
	conf.WriteString("loopback_users = none\n")
	if spec.TLS != nil {
		// The node's user may not reach the test's own temporary directory.
		tf := *spec.TLS
		for _, p := range []*string{&tf.CA, &tf.ServerCert, &tf.ServerKey} {
			b, err := os.ReadFile(*p)
			if err != nil {
				t.Fatal(err)
			}
			*p = filepath.Join(dir, filepath.Base(*p))
			if err := os.WriteFile(*p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		spec.TLS = &tf
		n.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		fmt.Fprintf(&conf, "listeners.ssl.local = %s\nssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n",
			n.TLSAddr, spec.TLS.CA, spec.TLS.ServerCert, spec.TLS.ServerKey)
		if spec.RequireClientCert {
			conf.WriteString("ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n")
		}
	}
	conf.WriteString(spec.ExtraConfig)
	files := map[string]string{"rabbitmq.conf": conf.String(), "enabled_plugins": "[].\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chownRabbitMQ(t, dir)
	n.env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(FreePort(t)),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(dir, "mnesia", "feature_flags"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "mnesia", "node.pid"),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := exec.CommandContext(ctx, "rabbitmq-server", "-detached")
	start.Env = n.env
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("start RabbitMQ node %s: %v\n%s", n.Name, err, out)
	}
	t.Cleanup(func() { n.Stop(t) })
	if out, err := n.Ctl(ctx, "wait", "--timeout", "55", filepath.Join(dir, "mnesia", "node.pid")); err != nil {
		t.Fatalf("RabbitMQ node %s did not start within 60s: %v\n%s\nlog:\n%s", n.Name, err, out, n.log())
	}
	return n
}

// Ctl runs rabbitmqctl against the node.
func (n *RabbitMQNode) Ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Stop stops the node (up to 30 s, then kills it); stopping a stopped node
// does nothing.
func (n *RabbitMQNode) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := n.Ctl(ctx, "stop"); err != nil && !strings.Contains(out, "nodedown") && !strings.Contains(out, "unable to connect") && !strings.Contains(out, "not running") {
		pid, _ := os.ReadFile(filepath.Join(n.dir, "mnesia", "node.pid"))
		if p, perr := strconv.Atoi(strings.TrimSpace(string(pid))); perr == nil {
			if proc, ferr := os.FindProcess(p); ferr == nil {
				_ = proc.Kill()
			}
		}
		t.Logf("stop RabbitMQ node %s: %v\n%s", n.Name, err, out)
	}
}

func (n *RabbitMQNode) log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "log", n.Name+".log"))
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	return string(b)
}

// chownRabbitMQ gives dir to the rabbitmq user the node runs as.
func chownRabbitMQ(t testing.TB, dir string) {
	t.Helper()
	u, err := user.Lookup("rabbitmq")
	if err != nil {
		t.Fatalf("no rabbitmq user to run a node as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("give %s to the rabbitmq user: %v", dir, err)
	}
}

// StartRabbitMQCluster starts n private nodes and clusters them (the
// second and later join the first), for tests of node loss. Each node is
// stopped when the test ends.
func StartRabbitMQCluster(t testing.TB, n int) []*RabbitMQNode {
	t.Helper()
	nodes := make([]*RabbitMQNode, n)
	for i := range nodes {
		nodes[i] = StartRabbitMQ(t, RabbitMQSpec{})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, node := range nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", nodes[0].Name}, {"start_app"}} {
			if out, err := node.Ctl(ctx, args...); err != nil {
				t.Fatalf("rabbitmqctl -n %s %s: %v\n%s\nlog:\n%s", node.Name, strings.Join(args, " "), err, out, node.log())
			}
		}
	}
	out, err := nodes[0].Ctl(ctx, "cluster_status")
	if err != nil {
		t.Fatalf("rabbitmqctl cluster_status: %v\n%s", err, out)
	}
	for _, node := range nodes {
		if !strings.Contains(out, node.Name) {
			t.Fatalf("node %s is not in the cluster:\n%s", node.Name, out)
		}
	}
	return nodes
}
