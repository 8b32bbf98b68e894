// Command goaws runs the goaws SQS/SNS emulator (github.com/Admiral-Piett/goaws)
// bound to loopback with an explicit config file, for the SQS and SNS
// adapters' tests on machines without AWS. scripts/services.sh starts it.
//
//	go run ./internal/emulator/goaws -addr 127.0.0.1:4100 -config internal/emulator/goaws/goaws.yaml
//
// goaws's own main listens on 0.0.0.0; this wrapper does not. It also
// corrects one protocol bug so the real AWS SDK can talk to it; the adapters
// themselves contain no goaws workaround (see fixSendMessageBatch).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"net/http/httptest"
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
	logrus.SetLevel(logrus.WarnLevel)
	conf.LoadYamlConfig(*config, *env)

	quit := make(chan bool)
	go gosqs.PeriodicTasks(100*time.Millisecond, quit)

	log.Printf("goaws: SQS and SNS on http://%s", *addr)
	srv := &http.Server{Addr: *addr, Handler: fixSendMessageBatch(router.New()), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// fixSendMessageBatch renames the keys of goaws's JSON SendMessageBatch reply
// to the ones the SQS JSON protocol defines ("Successful", "Failed"). goaws
// v0.5.4 answers with its XML element names, so an SDK client reads "0 of N
// sent" although all were queued. The adapter treats that as a failure (as it
// must against real SQS), hence the fix here, in the emulator.
func fixSendMessageBatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var reply map[string]json.RawMessage
		if rec.Code == http.StatusOK && json.Unmarshal(body, &reply) == nil {
			fixed := map[string]json.RawMessage{"Successful": json.RawMessage("[]"), "Failed": json.RawMessage("[]")}
			if v, ok := reply["SendMessageBatchResultEntry"]; ok && !bytes.Equal(v, []byte("null")) {
				fixed["Successful"] = v
			}
			if v, ok := reply["BatchResultErrorEntry"]; ok && !bytes.Equal(v, []byte("null")) {
				fixed["Failed"] = v
			}
			if b, err := json.Marshal(fixed); err == nil {
				body = b
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}
