package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codewatch/codewatch/internal/pgtest"
	"github.com/codewatch/codewatch/verify"
)

// FuzzWebhook throws arbitrary headers and bodies at the webhook: the answer
// is always a clear 2xx or 4xx (never a 5xx, never a crash), and a 2xx means
// the delivery is in the database.
func FuzzWebhook(f *testing.F) {
	seeds, _ := filepath.Glob("../../shared/seam/examples/*.json")
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "msg_seed", int64(0), uint8(0))
		}
	}
	f.Add([]byte(`{"event_id":"x","event_type":"lock.locked"}`), "msg_1", int64(0), uint8(1))
	f.Add([]byte(`not json`), "msg_2", int64(-400), uint8(0))
	f.Add([]byte(`{"event_id":1}`), "", int64(0), uint8(2))
	f.Add([]byte{}, "msg_3", int64(0), uint8(4))

	env := newPubEnv(f, pgtest.New(f))
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, body []byte, msgID string, skew int64, mode uint8) {
		h, err := verify.Sign(pubSecret, msgID, time.Now().Add(time.Duration(skew%1000)*time.Second), body)
		if err != nil {
			t.Skip()
		}
		if mode&1 != 0 {
			h = verify.StandardHeaders(h)
		}
		if mode&2 != 0 {
			h.Set("svix-signature", "v1,"+strconv.Itoa(int(mode)))
		}
		if mode&4 != 0 {
			h.Set("svix-timestamp", string(body[:min(len(body), 12)]))
		}
		req, err := http.NewRequest(http.MethodPost, env.url(), bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		for k, v := range h {
			for _, s := range v {
				req.Header.Add(k, s)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			// net/http refuses to send some header values; not our server.
			t.Skip()
		}
		reply, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 200:
			if bytes.Contains(reply, []byte(`"duplicate"`)) {
				return
			}
			// This very body is kept, under its message id (or, when
			// that id was taken by another body, under id#hash).
			id := verify.ReadHeaders(req.Header).ID
			n := 0
			for _, b := range append(env.storedBodies(t, "events", id, false), env.storedBodies(t, "quarantine", id, true)...) {
				if bytes.Equal(b, body) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("answered 200 but %d rows hold the body for %q: %s", n, id, reply)
			}
		case 400, 401, 413, 431:
			if !bytes.Contains(reply, []byte(`"ok":false`)) && resp.StatusCode != 431 {
				t.Fatalf("%d without an error body: %s", resp.StatusCode, reply)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, reply)
		}
	})
}
