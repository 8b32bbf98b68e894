package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisSentinel is a private Redis primary with replicas, watched by three
// sentinels under the name Master.
type RedisSentinel struct {
	Master    string
	Primary   string   // host:port of the primary at the start
	Replicas  []string // host:port of each replica
	Sentinels []string // host:port of each sentinel
	pids      map[string]int
}

// StartRedisSentinel starts a primary, replicas replicas of it and three
// sentinels (quorum 2, the primary deemed down after 1 s), all on loopback,
// and waits until the replicas are in sync and the sentinels know each
// other. Everything stops when the test ends.
func StartRedisSentinel(t testing.TB, replicas int) *RedisSentinel {
	t.Helper()
	dir := t.TempDir()
	rs := &RedisSentinel{Master: "msgkit-primary", pids: map[string]int{}}
	start := func(name string, args ...string) string {
		port := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		exited, out, pid := startProcess(t, "redis-server", append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", d,
			"--save", "", "--appendonly", "no"}, args...)...)
		waitForRedis(t, name, addr, exited, out)
		rs.pids[addr] = pid
		return addr
	}
	rs.Primary = start("primary")
	host, port, _ := net.SplitHostPort(rs.Primary)
	for i := range replicas {
		rs.Replicas = append(rs.Replicas, start(fmt.Sprintf("replica%d", i), "--replicaof", host, port))
	}
	for i := range 3 {
		p := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		conf := filepath.Join(dir, fmt.Sprintf("sentinel%d.conf", i))
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			p, dir, rs.Master, host, port, rs.Master, rs.Master, rs.Master)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		exited, out, pid := startProcess(t, "redis-server", conf, "--sentinel")
		waitForRedis(t, "sentinel", addr, exited, out)
		rs.pids[addr] = pid
		rs.Sentinels = append(rs.Sentinels, addr)
	}
	Eventually(t, 30*time.Second, "the replicas in sync and the sentinels aware of each other and of the replicas", func() bool {
		info, err := redisCommand(rs.Primary, "INFO", "replication")
		if err != nil || !strings.Contains(info, fmt.Sprintf("connected_slaves:%d", replicas)) || strings.Count(info, "state=online") != replicas {
			return false
		}
		for _, s := range rs.Sentinels {
			out, err := redisCommand(s, "SENTINEL", "MASTER", rs.Master)
			if err != nil || !strings.Contains(out, "num-other-sentinels\n2\n") || !strings.Contains(out, fmt.Sprintf("num-slaves\n%d\n", replicas)) {
				return false
			}
		}
		return true
	})
	return rs
}

// Kill stops the server at addr with SIGKILL, as a crashed node stops.
func (rs *RedisSentinel) Kill(t testing.TB, addr string) {
	t.Helper()
	if err := syscall.Kill(rs.pids[addr], syscall.SIGKILL); err != nil {
		t.Errorf("kill redis-server at %s: %v", addr, err)
	}
}

// PrimaryNow asks a sentinel which server is the primary.
func (rs *RedisSentinel) PrimaryNow() (string, error) {
	out, err := redisCommand(rs.Sentinels[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", rs.Master)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", fmt.Errorf("unexpected answer %q", out)
	}
	return net.JoinHostPort(f[0], f[1]), nil
}

// waitForRedis waits until the server at addr answers PING.
func waitForRedis(t testing.TB, what, addr string, exited <-chan struct{}, out *LockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := redisCommand(addr, "PING"); err == nil {
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before it answered on %s:\n%s", what, addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer on %s within 20s:\n%s", what, addr, out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a port: there is no signal to wait for
	}
}

// redisCommand sends one command in RESP and returns the reply's text
// (bulk strings and array elements one per line).
func redisCommand(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	var sb strings.Builder
	if err := readReply(r, &sb); err != nil {
		return "", err
	}
	return sb.String(), nil
}

func readReply(r *bufio.Reader, sb *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '+', ':':
		sb.WriteString(line[1:] + "\n")
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		sb.Write(buf[:n])
		sb.WriteString("\n")
	case '*':
		n, _ := strconv.Atoi(line[1:])
		for range n {
			if err := readReply(r, sb); err != nil {
				return err
			}
		}
	}
	return nil
}

// StartRedisCluster starts a Redis Cluster of n primaries (no replicas) on
// loopback, joins them with redis-cli --cluster create, and waits until
// every node reports the cluster ok. It returns the nodes' host:port; the
// servers stop when the test ends.
func StartRedisCluster(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var addrs []string
	for i := range n {
		port := FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		d := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		exited, out, _ := startProcess(t, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", d,
			"--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-node-timeout", "2000")
		waitForRedis(t, "redis-server (cluster node)", addr, exited, out)
		addrs = append(addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, "every node of the Redis Cluster to report cluster_state:ok", func() bool {
		for _, a := range addrs {
			info, err := redisCommand(a, "CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		return true
	})
	return addrs
}
