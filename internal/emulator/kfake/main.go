// Command kfake runs an in-memory Kafka cluster (github.com/twmb/franz-go/pkg/kfake,
// a server speaking the real Kafka wire protocol) on loopback, for the Kafka
// adapter's tests on machines without Kafka. scripts/services.sh starts it.
//
//	go run ./internal/emulator/kfake -port 19092
//
// kfake listens on 127.0.0.1 only. It keeps no data across restarts.
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 19092, "port to listen on (127.0.0.1)")
	partitions := flag.Int("partitions", 4, "partitions of a topic created with the broker's default")
	flag.Parse()

	c, err := kfake.NewCluster(
		kfake.Ports(*port),
		kfake.DefaultNumPartitions(*partitions),
		// Tests open and close many group members; a short minimum session
		// lets them configure fast failure detection like a tuned cluster.
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		log.Fatalf("kfake: start on 127.0.0.1:%d: %v", *port, err)
	}
	log.Printf("kfake: Kafka wire protocol on %v", c.ListenAddrs())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	c.Close()
}
