package console

// Signing in and out, the session every other page needs (requireSession),
// and the flash messages a form leaves for the next page.

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/handlers"
)

// requireSession lets a signed-in request through; others go to the
// sign-in page (and come back after), or get a 401 for a live refresh.
func (k *console) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now())
		if s == nil {
			if r.Header.Get(liveHeader) != "" {
				return c.String(http.StatusUnauthorized, "signed out")
			}
			if r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Site") == "cross-site" && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
				// A link from elsewhere (Slack, an alert, a ticket): the
				// browser kept the SameSite=Strict cookie back. Load the
				// page again from here, which sends it.
				return k.render(c, http.StatusOK, "reopen", page{Title: "Opening", Data: safeNext(r.URL.RequestURI())})
			}
			next := consolePrefix + "/"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			return c.Redirect(http.StatusSeeOther, consolePrefix+"/signin?next="+url.QueryEscape(next))
		}
		c.Set("console_session", s)
		if r.Method == http.MethodPost {
			if err := k.ck.sameOrigin(c); err != nil {
				return handlers.NewError(http.StatusForbidden, "forbidden", err.Error())
			}
			if !s.checkCSRF(c.FormValue(csrfField)) {
				return handlers.NewError(http.StatusForbidden, "forbidden", "This form has expired (or was not made by the console). Go back, reload the page and send it again.")
			}
		}
		return next(c)
	}
}

func sessionOf(c echo.Context) *session {
	s, _ := c.Get("console_session").(*session)
	return s
}

type signinData struct {
	Next, CSRF, Error string
}

func (k *console) signinPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	if s := readSession(k.keys, k.ck.get(c, k.ck.sessionName(c)), k.Now()); s != nil {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return k.showSignin(c, http.StatusOK, next, "")
}

func (k *console) showSignin(c echo.Context, status int, next, problem string) error {
	tok := k.ck.get(c, signinCookie)
	if len(tok) != 22 {
		tok = randomString(16)
		k.ck.set(c, signinCookie, tok, consolePrefix+"/signin", time.Hour)
	}
	p := page{Title: "Sign in", Data: signinData{Next: next, CSRF: tok, Error: problem}}
	if c.QueryParam("signed_out") == "1" && problem == "" {
		p.Flash = &flash{Kind: "ok", Text: "You are signed out."}
	}
	return k.render(c, status, "signin", p)
}

func (k *console) signin(c echo.Context) error {
	next := safeNext(c.FormValue("next"))
	if err := k.ck.sameOrigin(c); err != nil {
		return handlers.NewError(http.StatusForbidden, "forbidden", err.Error())
	}
	given := c.FormValue(csrfField)
	if want := k.ck.get(c, signinCookie); want == "" || !constantTimeEqual(given, want) {
		return k.showSignin(c, http.StatusForbidden, next, "The sign-in form had expired. Please enter your token again.")
	}
	token := strings.TrimSpace(c.FormValue("token"))
	// Every token is compared, in constant time, as the API does.
	var match *sessionKey
	for i, t := range k.keys {
		if token != "" && constantTimeEqual(token, t.token) {
			match = &k.keys[i]
		}
	}
	if match == nil {
		k.logger.WarnContext(c.Request().Context(), "console sign-in refused", "remote_ip", c.RealIP())
		return k.showSignin(c, http.StatusUnauthorized, next, "That token is not one of this codewatch's ops tokens (CODEWATCH_OPS_TOKEN).")
	}
	s, value := newSession(*match, k.Now(), k.SessionTTL)
	k.ck.set(c, k.ck.sessionName(c), value, "/", k.SessionTTL)
	k.ck.set(c, signinCookie, "", consolePrefix+"/signin", 0)
	k.logger.InfoContext(c.Request().Context(), "console sign-in", "name", s.Name, "remote_ip", c.RealIP(), "expires_at", time.Unix(s.ExpiresAt, 0).UTC())
	return c.Redirect(http.StatusSeeOther, next)
}

func (k *console) signout(c echo.Context) error {
	s := sessionOf(c)
	k.ck.set(c, k.ck.sessionName(c), "", "/", 0)
	k.logger.InfoContext(c.Request().Context(), "console sign-out", "name", s.Name)
	return c.Redirect(http.StatusSeeOther, consolePrefix+"/signin?signed_out=1")
}

// setFlash leaves a message for the next page this browser shows.
func (k *console) setFlash(c echo.Context, kind, text string) {
	s := sessionOf(c)
	k.ck.set(c, flashCookie, seal(s.key, "flash", flash{Kind: kind, Text: text, SID: s.ID}), consolePrefix+"/", time.Minute)
}

// takeFlash returns (and clears) the message left for this session.
func (k *console) takeFlash(c echo.Context) *flash {
	v := k.ck.get(c, flashCookie)
	if v == "" {
		return nil
	}
	k.ck.set(c, flashCookie, "", consolePrefix+"/", 0)
	s := sessionOf(c)
	var f flash
	if s == nil || !unseal(s.key, "flash", v, &f) || f.SID != s.ID {
		return nil
	}
	return &f
}
