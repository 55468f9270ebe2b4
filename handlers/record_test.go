package handlers_test

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codewatch/codewatch/handlers"
	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/proof"
)

// The console's printable deletion record (issue 22): the record's content,
// a link to the signed JSON, which verifies; without a signing key the page
// says so and the JSON is not offered.
func TestConsoleDeletionRecord(t *testing.T) {
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-record-1")
	entry, _, err := proof.Generate("c1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := proof.ParseKeys(entry)
	if err != nil {
		t.Fatal(err)
	}
	ops := *e.ops
	ops.Proofs = &proof.Service{Records: e.store, Keys: kr}
	srv := httptest.NewServer(handlers.NewOpsServer(&ops))
	t.Cleanup(srv.Close)
	b := e.client()
	b.base, b.origin = srv.URL, srv.URL
	b.signIn(aliceToken)

	if r := b.get("/console/codes/" + code); !strings.Contains(r.Body, `href="/console/codes/`+code+`/record"`) {
		t.Fatalf("the code's page has no link to its deletion record")
	}
	r := b.get("/console/codes/" + code + "/record")
	if r.Status != http.StatusOK {
		t.Fatalf("record page: %d\n%.600s", r.Status, r.Body)
	}
	for _, want := range []string{"Deletion record", code, "dev-record-1", lifecycle.TypeFailedToRemove, lifecycle.TypeDeleted,
		`/console/codes/` + code + `/record.json`, "@media print"} {
		if want == "@media print" {
			css := b.get("/console/assets/console.css")
			if !strings.Contains(css.Body, want) {
				t.Errorf("the stylesheet has no print rules")
			}
			continue
		}
		if !strings.Contains(r.Body, want) {
			t.Errorf("the record page lacks %q", want)
		}
	}
	if strings.Contains(r.Body, consolePIN) {
		t.Fatalf("the record page shows the PIN")
	}
	j := b.get("/console/codes/" + code + "/record.json")
	if j.Status != http.StatusOK || !strings.Contains(j.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("signed JSON: %d %v", j.Status, j.Header)
	}
	if _, err := proof.Verify([]byte(j.Body), func(id string) (ed25519.PublicKey, error) {
		if k, ok := kr.PublicKey(id); ok {
			return k, nil
		}
		return nil, errors.New("unknown key")
	}); err != nil {
		t.Fatalf("the console's signed JSON does not verify: %v", err)
	}
	if r := b.get("/console/codes/no-such-code/record"); r.Status != http.StatusNotFound {
		t.Errorf("record of an unknown code: %d", r.Status)
	}

	// Without CODEWATCH_SIGNING_KEY: the record, and no signed copy.
	u := e.client()
	u.signIn(aliceToken)
	r = u.get("/console/codes/" + code + "/record")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "No signed copy") || strings.Contains(r.Body, "record.json") {
		t.Fatalf("record page without a signing key: %d", r.Status)
	}
	if j := u.get("/console/codes/" + code + "/record.json"); j.Status != http.StatusNotImplemented {
		t.Fatalf("signed JSON without a key: %d", j.Status)
	}
}
