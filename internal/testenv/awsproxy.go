package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// AWSProxy forwards SQS and SNS API calls to an endpoint and records them,
// so a test can check how many calls a driver makes and what they carry
// while the driver talks to a real server. Point the driver's url at
// AWSProxy.URL.
type AWSProxy struct {
	URL string

	target string
	mu     sync.Mutex
	calls  map[string]int
	delay  map[string]time.Duration
	deny   map[string]string // action -> error code to answer with
	sent   []SQSEntry
	recvs  []Receive
	batch  map[string]int // entries sent in batch calls, per action
}

// SQSEntry is one message of a SendMessageBatch call as the driver sent it.
type SQSEntry struct {
	Body       string
	GroupID    string
	DedupID    string
	Attributes map[string]string
}

// Receive is one ReceiveMessage call: what it asked for and how many
// messages it got.
type Receive struct {
	Max, Wait int
	Got       int
}

// NewAWSProxy starts a proxy to target (http://host:port) that stops when
// the test ends.
func NewAWSProxy(tb testing.TB, target string) *AWSProxy {
	tb.Helper()
	p := &AWSProxy{target: strings.TrimSuffix(target, "/"), calls: map[string]int{}, delay: map[string]time.Duration{}, deny: map[string]string{}, batch: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Delay holds every call of action for d before forwarding it, as a
// distant endpoint would.
func (p *AWSProxy) Delay(action string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay[action] = d
}

// Deny answers every call of action with error code (SQS's AccessDenied,
// SNS's AuthorizationError), as AWS answers a call the caller's policy
// does not grant, instead of forwarding it.
func (p *AWSProxy) Deny(action, code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deny[action] = code
}

// Calls returns how many calls of action (e.g. "SendMessageBatch",
// "PublishBatch") went through.
func (p *AWSProxy) Calls(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[action]
}

// BatchEntries returns how many entries the batch calls of action carried.
func (p *AWSProxy) BatchEntries(action string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batch[action]
}

// Sent returns the messages of every SendMessageBatch call, in order.
func (p *AWSProxy) Sent() []SQSEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SQSEntry(nil), p.sent...)
}

// Receives returns every ReceiveMessage call that was answered, in the
// order of the answers.
func (p *AWSProxy) Receives() []Receive {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Receive(nil), p.recvs...)
}

func (p *AWSProxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	action := ""
	if target := r.Header.Get("X-Amz-Target"); target != "" { // SQS: JSON protocol
		action = target[strings.LastIndexByte(target, '.')+1:]
	} else if form, err := url.ParseQuery(string(body)); err == nil { // SNS: query protocol
		action = form.Get("Action")
	}
	p.mu.Lock()
	p.calls[action]++
	d := p.delay[action]
	denied := p.deny[action]
	p.record(action, body)
	p.mu.Unlock()
	if denied != "" {
		refuse(w, r, denied)
		return
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}

	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if action == "ReceiveMessage" {
		var in struct{ MaxNumberOfMessages, WaitTimeSeconds int }
		var out struct{ Messages []json.RawMessage }
		_ = json.Unmarshal(body, &in)
		_ = json.Unmarshal(reply, &out)
		p.mu.Lock()
		p.recvs = append(p.recvs, Receive{Max: in.MaxNumberOfMessages, Wait: in.WaitTimeSeconds, Got: len(out.Messages)})
		p.mu.Unlock()
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(reply)
}

// record notes what a call carried; p.mu is held.
func (p *AWSProxy) record(action string, body []byte) {
	switch action {
	case "SendMessageBatch":
		var in struct {
			Entries []struct {
				MessageBody            string
				MessageGroupId         string
				MessageDeduplicationId string
				MessageAttributes      map[string]struct{ StringValue string }
			}
		}
		_ = json.Unmarshal(body, &in)
		for _, e := range in.Entries {
			attrs := map[string]string{}
			for k, v := range e.MessageAttributes {
				attrs[k] = v.StringValue
			}
			p.sent = append(p.sent, SQSEntry{Body: e.MessageBody, GroupID: e.MessageGroupId, DedupID: e.MessageDeduplicationId, Attributes: attrs})
		}
		p.batch[action] += len(in.Entries)
	case "DeleteMessageBatch", "ChangeMessageVisibilityBatch":
		var in struct{ Entries []json.RawMessage }
		_ = json.Unmarshal(body, &in)
		p.batch[action] += len(in.Entries)
	case "PublishBatch":
		form, _ := url.ParseQuery(string(body))
		for k := range form {
			if strings.HasPrefix(k, "PublishBatchRequestEntries.member.") && strings.HasSuffix(k, ".Id") {
				p.batch[action]++
			}
		}
	}
}

// refuse answers r with error code in its protocol: JSON for SQS, XML for
// SNS's query protocol.
func refuse(w http.ResponseWriter, r *http.Request, code string) {
	msg := "User: arn:aws:iam::000000000000:user/test is not authorized to perform this action"
	if r.Header.Get("X-Amz-Target") != "" {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", code+";Sender")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(w, "<ErrorResponse><Error><Type>Sender</Type><Code>"+code+"</Code><Message>"+msg+"</Message></Error><RequestId>proxy</RequestId></ErrorResponse>")
}
