package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/codewatch/codewatch/handlers/console"
	"github.com/codewatch/codewatch/lifecycle"
)

// Names (issue 22) show on the API's codes and locks, ?q= finds them, and
// the console shows them first, finds them from its search box and tells
// the time in the lock's zone.
func TestNamesInAPIAndConsole(t *testing.T) {
	ctx := context.Background()
	e := newConsoleEnv(t, console.Console{})
	code := e.troubled("dev-names-1")
	e.troubled("dev-names-2") // no names
	name, door, street, tz := "Guest: Smith, 5–8 Dec", "Front door", "12 Elm St", "America/New_York"
	if err := e.store.SetCodeName(ctx, code, &name, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetDeviceNames(ctx, "dev-names-1", lifecycle.LockNames{DeviceName: &door, LocationName: &street, TimeZone: &tz}, e.clock.Now()); err != nil {
		t.Fatal(err)
	}

	get := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	type named struct {
		AccessCodeID   string  `json:"access_code_id"`
		DeviceID       string  `json:"device_id"`
		AccessCodeName *string `json:"access_code_name"`
		DeviceName     *string `json:"device_name"`
		LocationName   *string `json:"location_name"`
		TimeZone       *string `json:"time_zone"`
	}
	for _, q := range []string{"smith", "FRONT DOOR", "elm"} {
		var list struct {
			AccessCodes []named `json:"access_codes"`
		}
		get("/v1/access_codes?q="+url.QueryEscape(q), &list)
		if len(list.AccessCodes) != 1 || list.AccessCodes[0].AccessCodeID != code {
			t.Fatalf("q=%s: %+v", q, list.AccessCodes)
		}
		c := list.AccessCodes[0]
		if c.AccessCodeName == nil || *c.AccessCodeName != name || c.DeviceName == nil || *c.DeviceName != door ||
			c.LocationName == nil || *c.LocationName != street || c.TimeZone == nil || *c.TimeZone != tz {
			t.Fatalf("q=%s: names %+v", q, c)
		}
	}
	var one struct {
		AccessCode named `json:"access_code"`
	}
	get("/v1/access_codes/"+code, &one)
	if one.AccessCode.AccessCodeName == nil || *one.AccessCode.AccessCodeName != name || one.AccessCode.DeviceName == nil {
		t.Fatalf("one code: %+v", one.AccessCode)
	}
	var devs struct {
		Devices []named `json:"devices"`
	}
	get("/v1/devices?q=elm", &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].DeviceID != "dev-names-1" || devs.Devices[0].DeviceName == nil || *devs.Devices[0].DeviceName != door {
		t.Fatalf("devices q=elm: %+v", devs.Devices)
	}
	var dev struct {
		Device named `json:"device"`
	}
	get("/v1/devices/dev-names-2", &dev)
	if dev.Device.DeviceName != nil || dev.Device.TimeZone != nil {
		t.Fatalf("a lock without names: %+v", dev.Device)
	}

	b := e.client()
	b.signIn(aliceToken)
	r := b.get("/console/search?q=" + url.QueryEscape("smith"))
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Guest: Smith") || !strings.Contains(r.Body, code) {
		t.Fatalf("console search by name: %d\n%.800s", r.Status, r.Body)
	}
	r = b.get("/console/search?q=" + url.QueryEscape("elm st"))
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "/console/locks/dev-names-1") {
		t.Fatalf("console search by location: %d", r.Status)
	}
	r = b.get("/console/codes/" + code)
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `<span class="name">Guest: Smith, 5–8 Dec</span>`) ||
		!strings.Contains(r.Body, `<span class="name">Front door at 12 Elm St</span>`) {
		t.Fatalf("code page without names: %d", r.Status)
	}
	// The deletion's exact time in the lock's zone, UTC on hover.
	deleted := e.clock.Now().Add(-10 * time.Minute)
	loc, _ := time.LoadLocation(tz)
	if !strings.Contains(r.Body, deleted.In(loc).Format("2006-01-02 15:04:05 MST")) || !strings.Contains(r.Body, `title="`+deleted.UTC().Format("2006-01-02 15:04:05 UTC")+`"`) {
		t.Fatalf("the deletion's time is not in the lock's zone")
	}
	r = b.get("/console/locks/dev-names-1")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "Front door") || !strings.Contains(r.Body, "12 Elm St") {
		t.Fatalf("lock page without names: %d", r.Status)
	}
}
