package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/codewatch/codewatch/lifecycle"
)

// receipt is one alert delivery that arrived with a valid signature.
type receipt struct {
	AlertID      string
	Type         string
	AccessCodeID string
	// Sequence numbers the code's alerts in the order codewatch raised
	// them (the payload's sequence).
	Sequence int64
	At       time.Time
}

// receiver is the alert webhook endpoint: it checks each alert's signature
// with the svix library (webhook-* headers) and records it.
type receiver struct {
	wh  *svix.Webhook
	srv *http.Server
	url string

	mu       sync.Mutex
	receipts []receipt
	bad      []string
}

func startReceiver(secret string) (*receiver, error) {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{wh: wh, url: "http://" + ln.Addr().String() + "/alerts"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /alerts", r.handle)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	fail := func(msg string) {
		r.mu.Lock()
		r.bad = append(r.bad, msg)
		r.mu.Unlock()
		http.Error(w, msg, http.StatusBadRequest)
	}
	if req.Header.Get("webhook-id") == "" {
		fail("alert without webhook-id header")
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		fail("alert signature rejected: " + err.Error())
		return
	}
	var p lifecycle.AlertPayload
	if err := json.Unmarshal(body, &p); err != nil {
		fail("alert body is not an alert: " + err.Error())
		return
	}
	if p.AlertID != req.Header.Get("webhook-id") {
		fail(fmt.Sprintf("alert_id %s differs from webhook-id %s", p.AlertID, req.Header.Get("webhook-id")))
		return
	}
	r.mu.Lock()
	r.receipts = append(r.receipts, receipt{AlertID: p.AlertID, Type: p.Type, AccessCodeID: p.AccessCodeID, Sequence: p.Sequence, At: time.Now()})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// take returns and forgets what arrived so far.
func (r *receiver) take() ([]receipt, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, bad := r.receipts, r.bad
	r.receipts, r.bad = nil, nil
	return rs, bad
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}
