package main

import (
	"net/http"
	"strings"
	"sync"
)

// catalog keeps goaws alive under concurrent calls. goaws adds and removes
// queues, topics and subscriptions under its locks but looks them up
// without one (ReceiveMessage, SendMessageBatch, DeleteMessageBatch,
// ChangeMessageVisibility, Publish, CreateTopic, Subscribe...). A Go map
// read while another goroutine writes it is a fatal runtime error, not a
// data race that passes: the whole emulator exits ("concurrent map read and
// map write") and every test after it finds nothing listening. So a call
// that changes the catalog runs alone, and every other call shares it.
//
// Only goaws's own code runs under the lock, never a long poll's wait
// (arrivals sleeps outside it), so a creation waits for calls that each
// take microseconds.
type catalog struct{ mu sync.RWMutex }

// changesCatalog lists the actions, in both protocols, after which goaws's
// maps of queues and topics, or a topic's subscriptions, differ.
var changesCatalog = map[string]bool{
	"CreateQueue": true, "DeleteQueue": true, "SetQueueAttributes": true,
	"CreateTopic": true, "DeleteTopic": true, "Subscribe": true, "Unsubscribe": true,
	"SetSubscriptionAttributes": true,
}

// hold takes the lock for action and returns its release. An action it
// cannot tell runs alone.
func (c *catalog) hold(action string) (release func()) {
	if action == "" || changesCatalog[action] {
		c.mu.Lock()
		return c.mu.Unlock
	}
	c.mu.RLock()
	return c.mu.RUnlock
}

// guard returns goaws's router behind the lock, for the action r names: the
// X-Amz-Target of the JSON protocol, or the Action of the query protocol's
// form (which it puts back for goaws to read).
func (c *catalog) guard(goaws http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer c.hold(requestAction(r))()
		goaws.ServeHTTP(w, r)
	})
}

func requestAction(r *http.Request) string {
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		return target[strings.LastIndexByte(target, '.')+1:]
	}
	if r.ParseForm() != nil {
		return ""
	}
	action := r.Form.Get("Action")
	if r.Method == http.MethodPost {
		restoreForm(r, r.PostForm)
	}
	return action
}
