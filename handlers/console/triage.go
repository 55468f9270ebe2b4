package console

// The home page: the counts, and the codes that need attention, most urgent
// first (the unfiltered page is rendered once a second and shared).

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/codewatch/codewatch/lifecycle"
)

// triageLimit is how many codes the home page lists, most urgent first;
// the rest are a link to the codes list.
const triageLimit = 50

// The unfiltered home page's counts and codes are rendered once and shared
// by every reader for triageShared: with many people keeping it open (and
// their pages refreshing every few seconds) the database and the templates
// do the work once a second, not once per reader. An older copy is served
// only while a fresh one is being rendered, and never past triageStale.
// The page says when its figures were read. A reader who has just acted
// (acknowledged, retried...) gets a fresh render, which the others then
// share.
const (
	triageShared = time.Second
	triageStale  = 5 * time.Second
)

type triageData struct {
	Filter   codeFilter
	Filtered bool
	// Counts and Attention are the rendered "triage-counts" and
	// "triage-attention" (triageView).
	Counts, Attention template.HTML
}

// triageView is what the counts and the codes needing attention show.
type triageView struct {
	Summary  *lifecycle.StatusSummary
	States   []countView
	Reasons  []countView
	Codes    []codeView
	More     int64
	Filtered bool
	// Waiting counts the unconfirmed deletions not (yet) in trouble.
	Waiting int64
}

// triageFragments is a rendered triage: its counts, its codes and how many
// codes it lists.
type triageFragments struct {
	at                time.Time
	counts, attention template.HTML
	listed            int
}

// triageCache holds the unfiltered triage shared by every reader.
type triageCache struct {
	mu         sync.Mutex
	entry      *triageFragments
	refreshing bool
}

func (k *console) triage(c echo.Context) error {
	ctx := c.Request().Context()
	f, err := parseCodeFilter(c, false)
	if err != nil {
		return err
	}
	p := k.page(c, "Triage", "triage", true, nil)
	var fr *triageFragments
	if f.empty() && p.Flash == nil {
		fr, err = k.sharedTriage(ctx)
	} else {
		fr, err = k.renderTriage(ctx, f)
		if err == nil && f.empty() {
			k.keepTriage(fr)
		}
	}
	if err != nil {
		return err
	}
	p.Data = triageData{Filter: f, Filtered: !f.empty(), Counts: fr.counts, Attention: fr.attention}
	if fr.listed > 0 {
		p.Title = fmt.Sprintf("(%d) Triage", fr.listed)
	}
	return k.render(c, http.StatusOK, "triage", p)
}

// sharedTriage returns the unfiltered triage: the shared copy while it is
// fresh; the shared copy while one fresh render runs in the background
// (started here when none is); rendered now when there is none or it is
// past triageStale.
func (k *console) sharedTriage(ctx context.Context) (*triageFragments, error) {
	tc := &k.triageCache
	tc.mu.Lock()
	e, age := tc.entry, time.Duration(0)
	if e != nil {
		age = time.Since(e.at) // the machine's clock, not the page's (tests set that)
	}
	switch {
	case e != nil && age < triageShared:
		tc.mu.Unlock()
		return e, nil
	case e != nil && age < triageStale:
		if !tc.refreshing {
			tc.refreshing = true
			// Detached from this request (which is answered at once), with
			// the store's own deadline on every statement.
			bg := context.WithoutCancel(ctx)
			go func() {
				fr, err := k.renderTriage(bg, codeFilter{})
				if err == nil {
					k.keepTriage(fr)
				} else {
					k.logger.WarnContext(bg, "console triage render failed", "error", err)
				}
				tc.mu.Lock()
				tc.refreshing = false
				tc.mu.Unlock()
			}()
		}
		tc.mu.Unlock()
		return e, nil
	}
	tc.mu.Unlock()
	fr, err := k.renderTriage(ctx, codeFilter{})
	if err != nil {
		return nil, err
	}
	k.keepTriage(fr)
	return fr, nil
}

// keepTriage shares fr unless a newer render is shared already.
func (k *console) keepTriage(fr *triageFragments) {
	tc := &k.triageCache
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.entry == nil || fr.at.After(tc.entry.at) {
		tc.entry = fr
	}
}

// renderTriage reads and renders the counts and the codes needing
// attention that f selects.
func (k *console) renderTriage(ctx context.Context, f codeFilter) (*triageFragments, error) {
	at := time.Now()
	sum, err := k.Store.Summarize(ctx)
	if err != nil {
		return nil, err
	}
	yes := true
	lf := f.listFilter()
	lf.NeedsTroubleshooting, lf.Sort, lf.Limit = &yes, lifecycle.SortUrgency, triageLimit
	codes, next, err := k.Store.ListAccessCodes(ctx, lf)
	if err != nil {
		return nil, err
	}
	d := triageView{Summary: sum, Filtered: !f.empty()}
	d.States, d.Reasons = stateCounts(sum), reasonCounts(sum)
	for st, n := range sum.DeletionStates {
		if st.Unconfirmed() {
			d.Waiting += n
		}
	}
	d.Waiting = max(0, d.Waiting-sum.NeedsTroubleshooting)
	for i := range codes {
		d.Codes = append(d.Codes, newCodeView(&codes[i]))
	}
	if next != nil && !d.Filtered {
		d.More = sum.NeedsTroubleshooting - int64(len(codes))
	} else if next != nil {
		d.More = -1 // an unknown number more
	}
	fr := &triageFragments{at: at, listed: len(codes)}
	set := k.pages.sets["triage"]
	var b bytes.Buffer
	if err := set.ExecuteTemplate(&b, "triage-counts", d); err != nil {
		return nil, fmt.Errorf("render triage counts: %w", err)
	}
	fr.counts = template.HTML(b.String()) // rendered by html/template: escaped
	b.Reset()
	if err := set.ExecuteTemplate(&b, "triage-attention", d); err != nil {
		return nil, fmt.Errorf("render triage codes: %w", err)
	}
	fr.attention = template.HTML(b.String())
	return fr, nil
}

// countView is one number on the home page, linking to what it counts.
type countView struct {
	Label, URL, Class string
	N                 int64
}

func stateCounts(sum *lifecycle.StatusSummary) []countView {
	out := make([]countView, 0, len(lifecycle.States))
	for _, st := range lifecycle.States {
		out = append(out, countView{Label: stateLabel(st), Class: stateClass(st), N: sum.DeletionStates[st],
			URL: consolePrefix + "/codes?" + url.Values{"state": {string(st)}}.Encode()})
	}
	return out
}

func reasonCounts(sum *lifecycle.StatusSummary) []countView {
	var out []countView
	for _, r := range reasonsByUrgency() {
		out = append(out, countView{Label: reasonLabel(r), Class: "reason", N: sum.ByReason[r],
			URL: consolePrefix + "/?" + url.Values{"reason": {r}}.Encode()})
	}
	return out
}
