package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/interfaces"
	"github.com/Admiral-Piett/goaws/app/models"
)

// The corrections below make goaws v0.5.4 answer the way SQS does where the
// adapters depend on it, so that the adapters talk to the emulator exactly
// as they talk to AWS. Each names the goaws defect it corrects. None of them
// is in an adapter: an adapter that worked around goaws would be wrong on AWS.

const jsonContentType = "application/x-amz-json-1.0"

// fix wraps goaws's router with the corrections.
func fix(goaws http.Handler) http.Handler { return fixWith(goaws, &arrivals{}) }

func fixWith(goaws http.Handler, arrivals *arrivals) http.Handler {
	cat := &catalog{}
	goaws = cat.guard(goaws)
	f := &fifoReceiver{arrivals: arrivals, catalog: cat}
	tags := &queueTags{byURL: map[string]map[string]string{}}
	topics := &topicTags{byARN: map[string]map[string]string{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != jsonContentType {
			if topics.serve(w, r) {
				return
			}
			fixPublishBatch(goaws, w, r) // the query protocol: SNS
			arrivals.broadcast()
			return
		}
		target := r.Header.Get("X-Amz-Target")
		switch target {
		case "AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch",
			"AmazonSQS.ChangeMessageVisibility", "AmazonSQS.ChangeMessageVisibilityBatch":
			defer arrivals.broadcast() // waiting receives look again once it is done
		}
		switch target {
		case "AmazonSQS.SendMessageBatch":
			fixSendMessageBatch(goaws, w, r)
		case "AmazonSQS.ReceiveMessage":
			f.serve(goaws, w, r)
		case "AmazonSQS.ChangeMessageVisibilityBatch":
			changeVisibilityBatch(cat, w, r)
		case "AmazonSQS.SetQueueAttributes", "AmazonSQS.CreateQueue":
			fixQueueAttributes(goaws, w, r)
		case "AmazonSQS.TagQueue", "AmazonSQS.UntagQueue", "AmazonSQS.ListQueueTags":
			tags.serve(w, r)
		case "AmazonSQS.DeleteQueue":
			tags.forget(r)
			goaws.ServeHTTP(w, r)
		default:
			goaws.ServeHTTP(w, r)
		}
	})
}

// fixSendMessageBatch renames the keys of goaws's JSON SendMessageBatch reply
// to the ones the SQS JSON protocol defines ("Successful", "Failed"). goaws
// answers with its XML element names, so an SDK client reads "0 of N sent"
// although all were queued.
func fixSendMessageBatch(goaws http.Handler, w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	goaws.ServeHTTP(rec, r)
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
}

// fixPublishBatch makes goaws accept an SNS PublishBatch of ten entries, as
// SNS does. Entries are numbered from 1 on the wire; goaws's form decoder
// leaves an empty element 0 and counts it, so it refuses ten entries as
// "more than 10". Renumbering them from 0 leaves no empty element.
func fixPublishBatch(goaws http.Handler, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("Action") != "PublishBatch" {
		if r.PostForm != nil {
			restoreForm(r, r.PostForm)
		}
		goaws.ServeHTTP(w, r)
		return
	}
	const prefix = "PublishBatchRequestEntries.member."
	form := url.Values{}
	for k, v := range r.PostForm {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			if i := strings.IndexByte(rest, '.'); i > 0 {
				if n, err := strconv.Atoi(rest[:i]); err == nil && n > 0 {
					k = prefix + strconv.Itoa(n-1) + rest[i:]
				}
			}
		}
		form[k] = v
	}
	restoreForm(r, form)
	goaws.ServeHTTP(w, r)
}

// restoreForm puts form back as r's body, for a handler that parses it again.
func restoreForm(r *http.Request, form url.Values) {
	body := form.Encode()
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Form, r.PostForm = nil, nil
}

// fixQueueAttributes corrects two defects of goaws's CreateQueue and
// SetQueueAttributes. It turns a "Policy" attribute, which the SQS JSON
// protocol sends as a string holding a JSON document, into the object goaws
// decodes it as; goaws otherwise refuses the whole request (it does not
// enforce policies, so this only lets the call succeed as on SQS). And on
// SetQueueAttributes it sends the queue's current VisibilityTimeout,
// DelaySeconds and MaximumMessageSize when the call does not mention them:
// goaws would set them to 0, where SQS leaves them as they are.
func fixQueueAttributes(goaws http.Handler, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req map[string]json.RawMessage
	if json.Unmarshal(body, &req) == nil {
		attrs := map[string]json.RawMessage{}
		_ = json.Unmarshal(req["Attributes"], &attrs)
		var policy string
		if json.Unmarshal(attrs["Policy"], &policy) == nil && json.Valid([]byte(policy)) {
			attrs["Policy"] = json.RawMessage(policy)
		}
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.SetQueueAttributes" {
			keepCurrentAttributes(req["QueueUrl"], attrs)
		}
		if b, err := json.Marshal(attrs); err == nil {
			req["Attributes"] = b
			if b, err := json.Marshal(req); err == nil {
				body = b
			}
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	goaws.ServeHTTP(w, r)
}

func keepCurrentAttributes(rawURL json.RawMessage, attrs map[string]json.RawMessage) {
	var url string
	if json.Unmarshal(rawURL, &url) != nil {
		return
	}
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	q, ok := models.SyncQueues.Queues[url[strings.LastIndex(url, "/")+1:]]
	if !ok {
		return
	}
	for name, v := range map[string]int{"VisibilityTimeout": q.VisibilityTimeout, "DelaySeconds": q.DelaySeconds, "MaximumMessageSize": q.MaximumMessageSize} {
		if _, set := attrs[name]; !set {
			attrs[name], _ = json.Marshal(strconv.Itoa(v))
		}
	}
}

// fifoReceiver receives from FIFO queues with SQS's group semantics. goaws
// gets them wrong in three ways: Queue.LockGroup replaces the set of locked
// groups with the one it locks (so with two groups in flight a second
// message of the first is handed out), ChangeMessageVisibility to 0 never
// unlocks the message's group (so a nacked message is never redelivered),
// and MessageGroupId is not returned as a system attribute.
//
// It takes one message at a time from goaws, after recomputing the locked
// groups from the messages actually in flight, and it serialises FIFO
// receives so no other receive can clobber the locks in between. It long
// polls itself, because goaws ends a long poll at once when the only
// visible messages belong to locked groups.
type fifoReceiver struct {
	mu       sync.Mutex
	arrivals *arrivals
	catalog  *catalog
}

type receiveRequest struct {
	QueueURL string `json:"QueueUrl"`
	Max      int    `json:"MaxNumberOfMessages"`
	Wait     int    `json:"WaitTimeSeconds"`
}

func (f *fifoReceiver) serve(goaws http.Handler, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req receiveRequest
	if json.Unmarshal(body, &req) != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		goaws.ServeHTTP(w, r)
		return
	}
	if !strings.HasSuffix(req.QueueURL, ".fifo") {
		f.arrivals.longPoll(f.catalog, w, r, body, req)
		return
	}
	queue := req.QueueURL[strings.LastIndex(req.QueueURL, "/")+1:]
	limit := max(req.Max, 1)
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields)
	fields["MaxNumberOfMessages"] = json.RawMessage("1")
	fields["WaitTimeSeconds"] = json.RawMessage("0") // goaws then uses the queue's default: 0, no wait
	one, _ := json.Marshal(fields)

	deadline := time.Now().Add(time.Duration(req.Wait) * time.Second)
	var got []*models.ResultMessage
	for {
		arrived := f.arrivals.wait() // taken before looking: a send meanwhile wakes it
		for len(got) < limit {
			code, resp := f.receiveOne(r, one, queue)
			if code != http.StatusOK {
				writeJSON(w, code, resp)
				return
			}
			msgs := resp.(models.ReceiveMessageResponse).Result.Messages
			if len(msgs) == 0 {
				break
			}
			got = append(got, msgs...)
		}
		if len(got) > 0 || !time.Now().Before(deadline) {
			break
		}
		if !f.arrivals.sleep(r.Context(), arrived, deadline) {
			return
		}
	}
	addGroupIDs(queue, got)
	writeJSON(w, http.StatusOK, models.ReceiveMessageResponse{Result: models.ReceiveMessageResult{Messages: got}})
}

func (f *fifoReceiver) receiveOne(r *http.Request, body []byte, queue string) (int, interfaces.AbstractResponseBody) {
	f.mu.Lock()
	defer f.mu.Unlock()
	relockGroups(queue)
	sub := r.Clone(r.Context())
	sub.Body = io.NopCloser(bytes.NewReader(body))
	sub.ContentLength = int64(len(body))
	defer f.catalog.hold("ReceiveMessage")()
	return gosqs.ReceiveMessageV1(sub)
}

// changeVisibilityBatch answers ChangeMessageVisibilityBatch, which goaws
// does not implement, as SQS does: each entry is a ChangeMessageVisibility
// of its own, and the reply says which entries succeeded and why the others
// failed.
func changeVisibilityBatch(cat *catalog, w http.ResponseWriter, r *http.Request) {
	var req struct {
		QueueUrl string
		Entries  []struct {
			Id, ReceiptHandle string
			VisibilityTimeout int
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.QueueUrl == "" || len(req.Entries) == 0 || len(req.Entries) > 10 {
		http.Error(w, `{"__type":"InvalidParameterValue","message":"QueueUrl and 1 to 10 entries are required"}`, http.StatusBadRequest)
		return
	}
	type entryOK struct{ Id string }
	type entryFailed struct {
		Id, Code, Message string
		SenderFault       bool
	}
	reply := struct {
		Successful []entryOK
		Failed     []entryFailed
	}{Successful: []entryOK{}, Failed: []entryFailed{}}
	for _, e := range req.Entries {
		one, _ := json.Marshal(map[string]any{"QueueUrl": req.QueueUrl, "ReceiptHandle": e.ReceiptHandle, "VisibilityTimeout": e.VisibilityTimeout})
		sub := r.Clone(r.Context())
		sub.Body = io.NopCloser(bytes.NewReader(one))
		sub.ContentLength = int64(len(one))
		release := cat.hold("ChangeMessageVisibility")
		code, resp := gosqs.ChangeMessageVisibilityV1(sub)
		release()
		if code == http.StatusOK {
			reply.Successful = append(reply.Successful, entryOK{e.Id})
			continue
		}
		failed := entryFailed{Id: e.Id, Code: "InternalError", SenderFault: code < 500}
		if er, ok := resp.(models.ErrorResponse); ok {
			failed.Code, failed.Message = er.Result.Code, er.Result.Message
		}
		reply.Failed = append(reply.Failed, failed)
	}
	w.Header().Set("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
	w.Header().Set("Content-Type", jsonContentType)
	_ = json.NewEncoder(w).Encode(reply)
}

// arrivals answers long polls as SQS does, as soon as a message can be
// received, where goaws looks every 100 ms (so that a consumer that asks
// again at once, finding the queue just emptied, waits 50 ms on average
// for the next message). Every request that can make a message
// receivable (a send, a publish through SNS, a visibility change) wakes
// the waiting polls, which look again; a message that becomes visible by the clock (a visibility
// timeout or a delay running out) is found within pollEvery.
type arrivals struct {
	mu       sync.Mutex
	ch       chan struct{}
	sleeping int // polls waiting in sleep
}

// pollEvery is how often a waiting poll looks without being woken.
var pollEvery = 100 * time.Millisecond

// wait returns a channel closed by the next broadcast.
func (a *arrivals) wait() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.ch
}

func (a *arrivals) broadcast() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch != nil {
		close(a.ch)
		a.ch = nil
	}
}

// sleep waits for arrived, pollEvery or deadline, and reports false when
// the request ended meanwhile.
func (a *arrivals) sleep(ctx context.Context, arrived <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(max(0, min(pollEvery, time.Until(deadline))))
	defer t.Stop()
	a.mu.Lock()
	a.sleeping++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.sleeping--
		a.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return false
	case <-arrived:
	case <-t.C:
	}
	return true
}

// longPoll answers a standard queue's ReceiveMessage: goaws is asked
// without a wait, again whenever something may have arrived, until it
// returns messages or the request's wait is over.
func (a *arrivals) longPoll(cat *catalog, w http.ResponseWriter, r *http.Request, body []byte, req receiveRequest) {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields)
	fields["WaitTimeSeconds"] = json.RawMessage("0") // goaws then uses the queue's default: 0, no wait
	now, _ := json.Marshal(fields)
	deadline := time.Now().Add(time.Duration(req.Wait) * time.Second)
	for {
		arrived := a.wait() // taken before looking: a send meanwhile wakes it
		sub := r.Clone(r.Context())
		sub.Body = io.NopCloser(bytes.NewReader(now))
		sub.ContentLength = int64(len(now))
		release := cat.hold("ReceiveMessage")
		code, resp := gosqs.ReceiveMessageV1(sub)
		release()
		if code != http.StatusOK {
			writeJSON(w, code, resp)
			return
		}
		if len(resp.(models.ReceiveMessageResponse).Result.Messages) > 0 || !time.Now().Before(deadline) {
			writeJSON(w, code, resp)
			return
		}
		if !a.sleep(r.Context(), arrived, deadline) {
			return
		}
	}
}

// relockGroups sets the queue's locked groups to those with a message in flight.
func relockGroups(queue string) {
	models.SyncQueues.Lock()
	defer models.SyncQueues.Unlock()
	q, ok := models.SyncQueues.Queues[queue]
	if !ok || !q.IsFIFO {
		return
	}
	q.FIFOMessages = map[string]int{}
	for _, m := range q.Messages {
		if m.ReceiptHandle != "" {
			q.FIFOMessages[m.GroupID] = 0
		}
	}
}

func addGroupIDs(queue string, msgs []*models.ResultMessage) {
	if len(msgs) == 0 {
		return
	}
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	q, ok := models.SyncQueues.Queues[queue]
	if !ok {
		return
	}
	group := make(map[string]string, len(q.Messages))
	for _, m := range q.Messages {
		group[m.Uuid] = m.GroupID
	}
	for _, m := range msgs {
		if g, ok := group[m.MessageId]; ok {
			if m.Attributes == nil {
				m.Attributes = map[string]string{}
			}
			m.Attributes["MessageGroupId"] = g
		}
	}
}

// writeJSON answers the way goaws's router does for the JSON protocol.
func writeJSON(w http.ResponseWriter, code int, body interfaces.AbstractResponseBody) {
	w.Header().Set("x-amzn-RequestId", body.GetRequestId())
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(code)
	if res := body.GetResult(); res != nil {
		_ = json.NewEncoder(w).Encode(res)
	}
}

// queueTags answers TagQueue, UntagQueue and ListQueueTags, which goaws
// does not implement (it answers them with an error), as SQS does: tags
// are a map per queue URL, gone when the queue is deleted.
type queueTags struct {
	mu    sync.Mutex
	byURL map[string]map[string]string
}

func (q *queueTags) serve(w http.ResponseWriter, r *http.Request) {
	var req struct {
		QueueUrl string
		Tags     map[string]string
		TagKeys  []string
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.QueueUrl == "" {
		http.Error(w, `{"__type":"InvalidParameterValue","message":"QueueUrl is required"}`, http.StatusBadRequest)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	tags := q.byURL[req.QueueUrl]
	reply := map[string]any{}
	switch r.Header.Get("X-Amz-Target") {
	case "AmazonSQS.TagQueue":
		if tags == nil {
			tags = map[string]string{}
			q.byURL[req.QueueUrl] = tags
		}
		for k, v := range req.Tags {
			tags[k] = v
		}
	case "AmazonSQS.UntagQueue":
		for _, k := range req.TagKeys {
			delete(tags, k)
		}
	default:
		reply["Tags"] = tags
	}
	w.Header().Set("Content-Type", jsonContentType)
	_ = json.NewEncoder(w).Encode(reply)
}

// forget drops the tags of a queue being deleted, leaving the request's
// body for goaws to read.
func (q *queueTags) forget(r *http.Request) {
	body, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct{ QueueUrl string }
	if err != nil || json.Unmarshal(body, &req) != nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.byURL, req.QueueUrl)
}

// topicTags answers SNS TagResource, UntagResource and ListTagsForResource,
// which goaws does not implement (it answers "Bad Request"), as SNS does
// for topics: tags are a map per topic ARN, gone when the topic is deleted.
type topicTags struct {
	mu    sync.Mutex
	byARN map[string]map[string]string
}

// serve answers a tag call and reports true; any other request is left,
// body and all, for goaws (a DeleteTopic drops the topic's tags first).
func (t *topicTags) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		return false
	}
	form := r.PostForm
	action := form.Get("Action")
	switch action {
	case "TagResource", "UntagResource", "ListTagsForResource":
	case "DeleteTopic":
		t.mu.Lock()
		delete(t.byARN, form.Get("TopicArn"))
		t.mu.Unlock()
		restoreForm(r, form)
		return false
	default:
		restoreForm(r, form)
		return false
	}
	arn := form.Get("ResourceArn")
	if arn == "" {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>ResourceArn is required</Message></Error><RequestId>goaws</RequestId></ErrorResponse>`)
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tags := t.byARN[arn]
	var result strings.Builder
	switch action {
	case "TagResource":
		if tags == nil {
			tags = map[string]string{}
			t.byARN[arn] = tags
		}
		for i := 1; form.Has("Tags.member." + strconv.Itoa(i) + ".Key"); i++ {
			n := "Tags.member." + strconv.Itoa(i)
			tags[form.Get(n+".Key")] = form.Get(n + ".Value")
		}
	case "UntagResource":
		for i := 1; form.Has("TagKeys.member." + strconv.Itoa(i)); i++ {
			delete(tags, form.Get("TagKeys.member."+strconv.Itoa(i)))
		}
	default:
		result.WriteString("<Tags>")
		for k, v := range tags {
			result.WriteString("<member><Key>" + xmlText(k) + "</Key><Value>" + xmlText(v) + "</Value></member>")
		}
		result.WriteString("</Tags>")
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, `<`+action+`Response xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><`+action+`Result>`+
		result.String()+`</`+action+`Result><ResponseMetadata><RequestId>goaws</RequestId></ResponseMetadata></`+action+`Response>`)
	return true
}

// xmlText escapes s for an XML element's text.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
