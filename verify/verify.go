// Package verify checks that a webhook was signed by Seam (through Svix),
// against every configured secret so a secret can be rotated with no downtime.
package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	svix "github.com/svix/svix-webhooks/go"
)

// SecretPrefix starts every Svix endpoint secret.
const SecretPrefix = "whsec_"

// Tolerance is how far the signed timestamp may be from now, either way. It
// matches the svix library's own, which Verify enforces.
const Tolerance = 5 * time.Minute

// Kind says why a delivery was rejected; it is also a metric label.
type Kind string

// Rejection kinds.
const (
	MissingHeaders   Kind = "missing_headers"
	InvalidTimestamp Kind = "invalid_timestamp"
	StaleTimestamp   Kind = "stale_timestamp"
	FutureTimestamp  Kind = "future_timestamp"
	NoMatch          Kind = "no_matching_signature"
)

// Kinds lists every rejection kind.
var Kinds = []Kind{MissingHeaders, InvalidTimestamp, StaleTimestamp, FutureTimestamp, NoMatch}

// Error is a rejected delivery. Its message names the problem and never
// includes a secret or the body.
type Error struct {
	Kind    Kind
	Message string
}

func (e *Error) Error() string { return e.Message }

// Verifier checks signatures against a set of secrets.
type Verifier struct {
	hooks []*svix.Webhook
	keys  [][]byte
	now   func() time.Time
}

// ParseSecrets splits a comma-separated list of secrets and checks each.
func ParseSecrets(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.HasPrefix(s, SecretPrefix) {
			return nil, fmt.Errorf("secret %d does not start with %q", len(out)+1, SecretPrefix)
		}
		if _, err := svix.NewWebhook(s); err != nil || len(s) == len(SecretPrefix) {
			return nil, fmt.Errorf("secret %d is not %s followed by base64", len(out)+1, SecretPrefix)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no secret given")
	}
	return out, nil
}

// New returns a Verifier for the given secrets (see ParseSecrets). now is the
// clock used to classify stale timestamps; nil means time.Now.
func New(secrets []string, now func() time.Time) (*Verifier, error) {
	if now == nil {
		now = time.Now
	}
	v := &Verifier{now: now}
	for i, s := range secrets {
		wh, err := svix.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: not valid base64", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil {
			return nil, fmt.Errorf("secret %d: not valid base64", i+1)
		}
		v.hooks, v.keys = append(v.hooks, wh), append(v.keys, key)
	}
	if len(v.hooks) == 0 {
		return nil, errors.New("no secret given")
	}
	return v, nil
}

// Headers are the three signature headers, under either naming.
type Headers struct {
	ID, Timestamp, Signature string
}

// ReadHeaders takes the svix-* headers, or the webhook-* ones when those are
// absent, the same way the svix library does.
func ReadHeaders(h http.Header) Headers {
	out := Headers{ID: h.Get("svix-id"), Timestamp: h.Get("svix-timestamp"), Signature: h.Get("svix-signature")}
	if out.ID == "" || out.Timestamp == "" || out.Signature == "" {
		out = Headers{ID: h.Get("webhook-id"), Timestamp: h.Get("webhook-timestamp"), Signature: h.Get("webhook-signature")}
	}
	return out
}

// CheckHeaders checks what can be checked without the body: the three
// headers are there and the timestamp is within Tolerance. A delivery that
// fails here is refused before its body is read. It returns the headers.
func (v *Verifier) CheckHeaders(h http.Header) (Headers, error) {
	hd := ReadHeaders(h)
	if hd.ID == "" || hd.Timestamp == "" || hd.Signature == "" {
		return hd, &Error{MissingHeaders, "missing signature headers: svix-id, svix-timestamp and svix-signature (or webhook-id, webhook-timestamp and webhook-signature) are required"}
	}
	// The library's errors are unexported values; classify the timestamp here
	// so the caller gets a precise reason. The library checks it again.
	sec, err := strconv.ParseInt(hd.Timestamp, 10, 64)
	if err != nil {
		return hd, &Error{InvalidTimestamp, "the signature timestamp is not a unix time in seconds"}
	}
	now := v.now()
	ts := time.Unix(sec, 0)
	if now.Sub(ts) > Tolerance {
		return hd, &Error{StaleTimestamp, fmt.Sprintf("the signature timestamp is more than %s old: replayed or delayed message", Tolerance)}
	}
	if ts.Sub(now) > Tolerance {
		return hd, &Error{FutureTimestamp, fmt.Sprintf("the signature timestamp is more than %s in the future: check the sender's clock", Tolerance)}
	}
	return hd, nil
}

// Verify checks payload, the raw body exactly as received, against the
// headers. It returns the message id on success and *Error otherwise.
func (v *Verifier) Verify(payload []byte, h http.Header) (string, error) {
	hd, err := v.CheckHeaders(h)
	if err != nil {
		return "", err
	}
	// Which secret signed it, computed without copying the body (the svix
	// library formats id, timestamp and the whole body into one string per
	// secret tried: a forged 1 MiB upload would cost a megabyte of garbage
	// per secret). Only a match goes on to the library's own check, which
	// decides; it picks between svix-* and webhook-* names exactly as
	// ReadHeaders does, so it reads the same three values.
	i := v.match(hd, payload)
	if i >= 0 && v.hooks[i].Verify(payload, h) == nil {
		return hd.ID, nil
	}
	return "", &Error{NoMatch, "no signature matches any configured secret"}
}

// match returns the index of the secret whose signature of payload is among
// hd's, or -1. The signed content and the comparison are the svix library's:
// "{id}.{unix seconds}.{body}", HMAC-SHA256, base64, compared in constant time.
func (v *Verifier) match(hd Headers, payload []byte) int {
	sec, err := strconv.ParseInt(hd.Timestamp, 10, 64)
	if err != nil {
		return -1
	}
	var given [][]byte
	for _, vs := range strings.Split(hd.Signature, " ") {
		if sig, ok := strings.CutPrefix(vs, "v1,"); ok {
			given = append(given, []byte(sig))
		}
	}
	if len(given) == 0 {
		return -1
	}
	prefix := strconv.AppendInt([]byte(hd.ID+"."), sec, 10)
	prefix = append(prefix, '.')
	want := make([]byte, base64.StdEncoding.EncodedLen(sha256.Size))
	for i, key := range v.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(prefix)
		mac.Write(payload)
		base64.StdEncoding.Encode(want, mac.Sum(nil))
		for _, g := range given {
			if hmac.Equal(g, want) {
				return i
			}
		}
	}
	return -1
}

// Sign returns the headers Svix sends for body, signed with secret at ts.
// codewatch uses it to send test events and to sign its own alerts.
func Sign(secret, msgID string, ts time.Time, body []byte) (http.Header, error) {
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("secret is not %s followed by base64", SecretPrefix)
	}
	sig, err := wh.Sign(msgID, ts, body)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("svix-id", msgID)
	h.Set("svix-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("svix-signature", sig)
	return h, nil
}

// StandardHeaders renames svix-* headers to the Standard Webhooks names.
func StandardHeaders(h http.Header) http.Header {
	out := http.Header{}
	out.Set("webhook-id", h.Get("svix-id"))
	out.Set("webhook-timestamp", h.Get("svix-timestamp"))
	out.Set("webhook-signature", h.Get("svix-signature"))
	return out
}
