package console

// What every page is made of: the frame (page) and menu, the parsed
// templates and embedded assets, rendering, and the template functions.

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed *.html console.css console.js
var consoleFS embed.FS

// page is what every console template receives.
type page struct {
	Title   string
	Nav     []navItem
	Session *session
	CSRF    string
	Flash   *flash
	// Q is the search box's text.
	Q string
	// Live pages update themselves every Refresh seconds.
	Live    bool
	Refresh int
	Now     time.Time
	Data    any
}

type navItem struct {
	Label, URL string
	Current    bool
}

// consoleNav is the console's menu, in order. A new section (issue 12's
// locks) is one more entry here.
func (k *console) consoleNav() []navItem {
	nav := []navItem{
		{Label: "Triage", URL: consolePrefix + "/"},
		{Label: "Codes", URL: consolePrefix + "/codes"},
		{Label: "Locks", URL: consolePrefix + "/locks"},
		{Label: "Quarantine", URL: consolePrefix + "/quarantine"},
		{Label: "Alerts", URL: consolePrefix + "/alerts"},
	}
	if k.Jobs != nil {
		nav = append(nav, navItem{Label: "Jobs", URL: jobsPrefix + "/"})
	}
	return nav
}

// page frames data for a signed-in request; nav is the menu entry to mark
// current ("triage", "codes"...).
func (k *console) page(c echo.Context, title, nav string, live bool, data any) page {
	p := page{Title: title, Data: data, Live: live, Refresh: int(k.Refresh / time.Second), Now: k.Now().UTC()}
	if s := sessionOf(c); s != nil {
		p.Session, p.CSRF = s, s.CSRF()
		if c.Request().Header.Get(liveHeader) == "" {
			p.Flash = k.takeFlash(c)
		}
	}
	for _, n := range k.consoleNav() {
		n.Current = strings.EqualFold(n.Label, nav)
		p.Nav = append(p.Nav, n)
	}
	if sd, ok := data.(searchData); ok {
		p.Q = sd.Q
	}
	return p
}

// pages holds one parsed template set per page, and the assets.
type pages struct {
	sets   map[string]*template.Template
	assets map[string]asset
}

type asset struct {
	body        []byte
	hash        string
	contentType string
}

func mustParsePages(now func() time.Time) *pages {
	p := &pages{sets: map[string]*template.Template{}, assets: map[string]asset{}}
	for _, name := range []string{"console.css", "console.js"} {
		b, err := consoleFS.ReadFile(name)
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		p.assets[name] = asset{body: b, hash: hex.EncodeToString(sum[:6]), contentType: mime.TypeByExtension(path.Ext(name))}
	}
	funcs := templateFuncs(p, now)
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(consoleFS, "layout.html"))
	files, err := fs.Glob(consoleFS, "*.html")
	if err != nil {
		panic(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		p.sets[name] = template.Must(template.Must(base.Clone()).ParseFS(consoleFS, f))
	}
	return p
}

// withQuery is the console's page at path with the query q (nil for none)
// and the pairs kv whose values are not empty.
func withQuery(path string, q url.Values, kv ...string) string {
	if q == nil {
		q = url.Values{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return consolePrefix + path + "?" + q.Encode()
}

// render writes a whole page or nothing: a template error is a 500, not
// half a page.
func (k *console) render(c echo.Context, status int, name string, p page) error {
	var buf bytes.Buffer
	entry := "layout"
	if name == "reopen" {
		entry = "reopen"
	}
	if err := k.pages.sets[name].ExecuteTemplate(&buf, entry, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// asset serves the embedded CSS and JavaScript; a URL naming the current
// content hash may be cached for good.
func (k *console) asset(c echo.Context) error {
	a, ok := k.pages.assets[c.Param("name")]
	if !ok {
		return echo.ErrNotFound
	}
	if c.QueryParam("v") == a.hash {
		c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	return c.Blob(http.StatusOK, a.contentType, a.body)
}

func templateFuncs(p *pages, now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) string {
			return consolePrefix + "/assets/" + name + "?v=" + p.assets[name].hash
		},
		"when":   func(t time.Time) template.HTML { return when(t, now()) },
		"whenp":  func(t *time.Time) template.HTML { return whenPtr(t, now(), "—") },
		"exact":  exact,
		"inZone": inZone,
		"inZonep": func(t *time.Time, tz *string, none string) template.HTML {
			if t == nil {
				return template.HTML(template.HTMLEscapeString(none))
			}
			return inZone(*t, tz)
		},
		"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":       func(t time.Time) string { return t.UTC().Format("15:04:05") + " UTC" },
		"dur":         humanDuration,
		"stateLabel":  stateLabel,
		"stateClass":  stateClass,
		"reasonLabel": reasonLabel,
		"eventLabel":  eventLabel,
		"alertLabel":  alertLabel,
		"statusLabel": deliveryLabel,
		"codeURL":     codeURL,
		"lockURL":     lockURL,
		"deref": func(s *string) string {
			if s == nil {
				return ""
			}
			return *s
		},
		"codesURL": func(kv ...string) string {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				q.Set(kv[i], kv[i+1])
			}
			return consolePrefix + "/codes?" + q.Encode()
		},
		"deref2": func(b *bool) bool { return b != nil && *b },
		"onDevice": func(b *bool) string {
			switch {
			case b == nil:
				return "not known"
			case *b:
				return "yes"
			}
			return "no"
		},
		"reasons": reasonsByUrgency,
	}
}
