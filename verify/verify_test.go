package verify_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/codewatch/codewatch/verify"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

var body = []byte(`{"event_id":"e1","event_type":"access_code.deleted"}`)

// svixHeaders signs with the svix library itself, as Seam's sender does.
func svixHeaders(t *testing.T, secret, id string, ts time.Time, payload []byte) http.Header {
	t.Helper()
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, ts, payload)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("svix-signature", sig)
	return h
}

func TestVerify(t *testing.T) {
	now := time.Now()
	v, err := verify.New([]string{secretA, secretB}, nil)
	if err != nil {
		t.Fatal(err)
	}
	std := func(h http.Header) http.Header { return verify.StandardHeaders(h) }
	cases := []struct {
		name    string
		headers http.Header
		body    []byte
		kind    verify.Kind // "" means accepted
	}{
		{"first secret", svixHeaders(t, secretA, "msg_1", now, body), body, ""},
		{"second secret (rotation)", svixHeaders(t, secretB, "msg_1", now, body), body, ""},
		{"webhook-* names", std(svixHeaders(t, secretA, "msg_1", now, body)), body, ""},
		{"several signatures, one good", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Set("svix-signature", "v1,AAAA v2,BBBB "+h.Get("svix-signature"))
			return h
		}(), body, ""},
		{"unknown secret", svixHeaders(t, "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCEh", "msg_1", now, body), body, verify.NoMatch},
		{"body changed", svixHeaders(t, secretA, "msg_1", now, body), []byte(`{"event_id":"e2"}`), verify.NoMatch},
		{"re-serialised body", svixHeaders(t, secretA, "msg_1", now, body), []byte(`{"event_id": "e1", "event_type": "access_code.deleted"}`), verify.NoMatch},
		{"id changed", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Set("svix-id", "msg_2")
			return h
		}(), body, verify.NoMatch},
		{"stale timestamp", svixHeaders(t, secretA, "msg_1", now.Add(-6*time.Minute), body), body, verify.StaleTimestamp},
		{"future timestamp", svixHeaders(t, secretA, "msg_1", now.Add(6*time.Minute), body), body, verify.FutureTimestamp},
		{"timestamp not a number", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Set("svix-timestamp", "yesterday")
			return h
		}(), body, verify.InvalidTimestamp},
		{"no headers", http.Header{}, body, verify.MissingHeaders},
		{"signature missing", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Del("svix-signature")
			return h
		}(), body, verify.MissingHeaders},
		{"signature of wrong length", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Set("svix-signature", "v1,"+strings.Repeat("A", 7))
			return h
		}(), body, verify.NoMatch},
		{"signature without version", func() http.Header {
			h := svixHeaders(t, secretA, "msg_1", now, body)
			h.Set("svix-signature", strings.TrimPrefix(h.Get("svix-signature"), "v1,"))
			return h
		}(), body, verify.NoMatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := v.Verify(c.body, c.headers)
			if c.kind == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if id != "msg_1" {
					t.Fatalf("message id %q", id)
				}
				return
			}
			var ve *verify.Error
			if !errors.As(err, &ve) {
				t.Fatalf("want *verify.Error %s, got %v", c.kind, err)
			}
			if ve.Kind != c.kind {
				t.Fatalf("kind %s, want %s (%v)", ve.Kind, c.kind, err)
			}
			for _, s := range []string{secretA, secretB, string(body)} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("error message leaks %q", s)
				}
			}
		})
	}
}

func TestSignMatchesSvix(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	h, err := verify.Sign(secretA, "msg_x", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := svix.NewWebhook(secretA)
	if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
		t.Fatalf("svix rejects verify.Sign: %v", err)
	}
}

func TestParseSecrets(t *testing.T) {
	got, err := verify.ParseSecrets(" " + secretA + " , " + secretB + ",")
	if err != nil || len(got) != 2 || got[0] != secretA || got[1] != secretB {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "abc", "whsec_", "whsec_!!!notbase64", secretA + ",nope"} {
		if _, err := verify.ParseSecrets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "MfKQ9r8") {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
}

// The body-copy-free precheck must agree with the svix library on what
// matches: genuine signatures (several in one header, either header naming,
// a timestamp with leading zeros), a wrong secret, a changed body or id.
func TestPrecheckAgreesWithSvix(t *testing.T) {
	now := time.Now()
	secrets := []string{secretA, secretB}
	v, err := verify.New(secrets, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	other := "whsec_" + strings.Repeat("QUJD", 8)
	sign := func(secret, id string, b []byte) http.Header {
		h, err := verify.Sign(secret, id, now, b)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cases := []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"first secret", sign(secrets[0], "msg_1", body), body, true},
		{"second secret", sign(secrets[1], "msg_1", body), body, true},
		{"webhook-* names", verify.StandardHeaders(sign(secrets[1], "msg_2", body)), body, true},
		{"unknown secret", sign(other, "msg_1", body), body, false},
		{"body changed", sign(secrets[0], "msg_1", body), append([]byte{' '}, body...), false},
	}
	several := sign(other, "msg_3", body)
	several.Set("svix-signature", several.Get("svix-signature")+" v1,bm90LWEtc2ln "+sign(secrets[0], "msg_3", body).Get("svix-signature"))
	cases = append(cases, struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{"several signatures, one genuine", several, body, true})
	zeros := sign(secrets[0], "msg_4", body)
	zeros.Set("svix-timestamp", "000"+zeros.Get("svix-timestamp"))
	cases = append(cases, struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{"timestamp with leading zeros", zeros, body, true})
	for _, c := range cases {
		_, err := v.Verify(c.body, c.h)
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v, want ok %v", c.name, err, c.ok)
		}
		lib := false
		for _, s := range secrets {
			wh, _ := svix.NewWebhook(s)
			lib = lib || wh.Verify(c.body, c.h) == nil
		}
		if lib != c.ok {
			t.Errorf("%s: the svix library says %v, the test %v", c.name, lib, c.ok)
		}
	}
}
