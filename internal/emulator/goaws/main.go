// Command goaws runs the goaws SQS/SNS emulator (github.com/Admiral-Piett/goaws)
// bound to loopback with an explicit config file, for the SQS and SNS
// adapters' tests on machines without AWS. scripts/services.sh starts it.
//
//	go run ./internal/emulator/goaws -addr 127.0.0.1:4100 -config internal/emulator/goaws/goaws.yaml
//
// goaws's own main listens on 0.0.0.0; this wrapper does not. It also
// corrects the goaws defects that would make the real AWS SDK see something
// SQS never answers (fixes.go); the adapters contain no goaws workaround.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/Admiral-Piett/goaws/app/conf"
	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/router"
	"github.com/sirupsen/logrus"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4100", "host:port to listen on; keep it on loopback")
	config := flag.String("config", "internal/emulator/goaws/goaws.yaml", "goaws config file")
	env := flag.String("env", "Local", "environment section of the config file")
	flag.Parse()

	if _, err := os.Stat(*config); err != nil {
		log.Fatalf("goaws: config file: %v", err)
	}
	logrus.SetLevel(logrus.ErrorLevel) // goaws warns of every empty receive
	conf.LoadYamlConfig(*config, *env)

	quit := make(chan bool)
	go gosqs.PeriodicTasks(100*time.Millisecond, quit)

	log.Printf("goaws: SQS and SNS on http://%s", *addr)
	srv := &http.Server{Addr: *addr, Handler: fix(router.New()), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
