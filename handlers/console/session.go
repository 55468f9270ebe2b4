package console

// Console sessions: an ops token, typed once into the sign-in page, becomes a
// signed, expiring cookie. Nothing is stored on the server: the cookie is
// signed with a key derived from the token it was made with, so
//
//   - every replica with the same CODEWATCH_OPS_TOKEN accepts it, and a
//     restart or a rolling update signs no one out;
//   - removing a token from CODEWATCH_OPS_TOKEN ends, at once and on every
//     replica, every session made with it;
//   - there is no extra secret to make, share between replicas or rotate.
//
// Signing out clears the cookie in that browser; a copy of the cookie taken
// before stays valid until it expires (CODEWATCH_SESSION_TTL) or its token
// is removed.
//
// Forms that change state carry a CSRF token bound to the session (an HMAC of
// its random id); the sign-in form, used before there is a session, carries
// a random value also set in a cookie (double submit). Every POST is also
// refused when the browser says it comes from another site (Origin,
// Sec-Fetch-Site), and every cookie is SameSite=Strict.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
)

const (
	sessionCookie       = "codewatch_session"
	secureSessionCookie = "__Host-codewatch_session" // with Secure: Path=/, no Domain
	signinCookie        = "codewatch_signin"
	flashCookie         = "codewatch_flash"
	csrfField           = "csrf"
	// liveHeader marks the console's own background refresh requests: they
	// get a 401 rather than a redirect when the session has ended.
	liveHeader = "X-Codewatch-Live"
)

// sessionKey is one ops token and the key that signs its sessions.
type sessionKey struct {
	name, token string
	key         []byte
}

func deriveSessionKeys(tokens []handlers.Token) []sessionKey {
	out := make([]sessionKey, len(tokens))
	for i, t := range tokens {
		m := hmac.New(sha256.New, []byte(t.Value))
		m.Write([]byte("codewatch console session key v1"))
		out[i] = sessionKey{name: t.Name, token: t.Value, key: m.Sum(nil)}
	}
	return out
}

// session is a signed-in person: the token's name, and the session's own
// random id (CSRF tokens and flash messages are bound to it).
type session struct {
	Name      string `json:"n"`
	ID        string `json:"sid"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
	key       []byte
}

func mac(key []byte, purpose, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(data))
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}

// seal signs payload (JSON of v) for purpose: "payload.mac".
func seal(key []byte, purpose string, v any) string {
	raw, _ := json.Marshal(v)
	p := b64.EncodeToString(raw)
	return p + "." + b64.EncodeToString(mac(key, purpose, p))
}

// unseal checks a sealed value against key and decodes it into v.
func unseal(key []byte, purpose, sealed string, v any) bool {
	p, sig, ok := strings.Cut(sealed, ".")
	if !ok {
		return false
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, purpose, p)) {
		return false
	}
	raw, err := b64.DecodeString(p)
	return err == nil && json.Unmarshal(raw, v) == nil
}

// newSession signs a session for the token k, valid for ttl.
func newSession(k sessionKey, now time.Time, ttl time.Duration) (*session, string) {
	s := &session{Name: k.name, ID: randomString(16), IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), key: k.key}
	return s, seal(k.key, "session", s)
}

// readSession returns the session a cookie value carries, if it was signed
// by one of keys (a configured token, the one it names), and has not
// expired.
func readSession(keys []sessionKey, value string, now time.Time) *session {
	if value == "" || len(value) > 4096 {
		return nil
	}
	for _, k := range keys {
		var s session
		if unseal(k.key, "session", value, &s) && s.Name == k.name && s.ID != "" &&
			now.Unix() < s.ExpiresAt && s.IssuedAt <= now.Add(time.Minute).Unix() {
			s.key = k.key
			return &s
		}
	}
	return nil
}

// CSRF is the anti-forgery token of the session's forms.
func (s *session) CSRF() string { return b64.EncodeToString(mac(s.key, "csrf", s.ID)) }

func (s *session) checkCSRF(given string) bool {
	got, err := b64.DecodeString(given)
	return err == nil && hmac.Equal(got, mac(s.key, "csrf", s.ID))
}

// flash is a one-time message shown on the page a form redirects to.
type flash struct {
	Kind string `json:"k"` // ok or error
	Text string `json:"t"`
	SID  string `json:"sid"`
}

// cookies knows how the console's cookies are set for a request.
type cookies struct {
	publicURL *url.URL
}

// secure reports whether the console is reached over HTTPS: the request
// came over TLS (or through a proxy that says so), or CODEWATCH_PUBLIC_URL
// is https.
func (k cookies) secure(c echo.Context) bool {
	return (k.publicURL != nil && k.publicURL.Scheme == "https") || c.Scheme() == "https"
}

func (k cookies) sessionName(c echo.Context) string {
	if k.secure(c) {
		return secureSessionCookie
	}
	return sessionCookie
}

func (k cookies) set(c echo.Context, name, value, path string, maxAge time.Duration) {
	ck := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: k.secure(c)}
	if maxAge > 0 {
		ck.MaxAge = int(maxAge / time.Second)
		ck.Expires = time.Now().Add(maxAge)
	} else {
		ck.MaxAge = -1
	}
	c.SetCookie(ck)
}

func (k cookies) get(c echo.Context, name string) string {
	ck, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

// sameOrigin refuses a state-changing request the browser says another site
// made: its Origin is neither the console's own (the request's host) nor
// CODEWATCH_PUBLIC_URL's, or Sec-Fetch-Site says cross-site. Browsers that
// send neither header still need the CSRF token.
func (k cookies) sameOrigin(c echo.Context) error {
	r := c.Request()
	forbidden := errors.New("This form was sent from another site. Open the console and try again.")
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil {
			return forbidden
		}
		own := u.Host == r.Host
		if k.publicURL != nil && strings.EqualFold(u.Scheme, k.publicURL.Scheme) && strings.EqualFold(u.Host, k.publicURL.Host) {
			own = true
		}
		if !own {
			return forbidden
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return forbidden
	}
	return nil
}

// constantTimeEqual compares two strings without leaking where they differ.
func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// safeNext is where to go after signing in: a console path only, never
// another site ("//evil", "/\evil", absolute URLs).
func safeNext(next string) string {
	if !strings.HasPrefix(next, consolePrefix+"/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, consolePrefix+"/signin") {
		return consolePrefix + "/"
	}
	return next
}
