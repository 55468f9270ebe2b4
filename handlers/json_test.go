package handlers

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/codewatch/codewatch/lifecycle"
)

// fill sets every field of v (a pointer) to a value that is not its zero,
// recursively, so that a field appendCodeJSON forgets shows in its output.
func fill(t *testing.T, v reflect.Value, depth int) {
	t.Helper()
	rawType := reflect.TypeOf(json.RawMessage(nil))
	timeType := reflect.TypeOf(time.Time{})
	switch {
	case v.Type() == rawType:
		v.SetBytes([]byte(`{"access_code_errors": [{"message": "<b>x</b> & y", "n": 1}], "w": [ ]}`))
		return
	case v.Type() == timeType:
		v.Set(reflect.ValueOf(time.Date(2026, 11, 30, 21, 5, 7, 123456000, time.FixedZone("x", 3600))))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(`id "quoted" <&> é ` + "\u2028 \x01")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(42)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, depth+1)
		fill(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), depth+1)
			}
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf("any"))
	default:
		t.Fatalf("fill: no value for %s", v.Type())
	}
}

// encodingJSON is what json.Encoder (as echo's c.JSON uses it) writes.
func encodingJSON(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// appendCodeJSON writes exactly what encoding/json writes: for every field set
// (with quotes, HTML, control and non-ASCII characters, raw JSON with
// spaces, times in a zone), for zero values and nulls, and for codes
// without events.
func TestAppendJSONIsEncodingJSON(t *testing.T) {
	var full lifecycle.AccessCode
	fill(t, reflect.ValueOf(&full).Elem(), 0)
	var plain lifecycle.AccessCode
	plain.AccessCodeID, plain.DeletionState = "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e", lifecycle.Removed
	plain.UpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	plain.Events = []lifecycle.EventRef{}
	for name, c := range map[string]lifecycle.AccessCode{"every field": full, "zero": {}, "plain": plain} {
		if got, want := appendCodeJSON(nil, &c), encodingJSON(t, c); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	codes := []lifecycle.AccessCode{full, {}, plain}
	for name, cs := range map[string][]lifecycle.AccessCode{"codes": codes, "none": {}, "nil": nil} {
		if got, want := appendCodesJSON(nil, cs), encodingJSON(t, cs); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	var dev lifecycle.Device
	fill(t, reflect.ValueOf(&dev).Elem(), 0)
	for name, d := range map[string]lifecycle.Device{"every field": dev, "zero": {}} {
		if got, want := appendDeviceJSON(nil, &d), encodingJSON(t, d); !bytes.Equal(got, want) {
			t.Errorf("device, %s:\n got %s\nwant %s", name, got, want)
		}
	}
}

func BenchmarkAppendCodesJSON(b *testing.B) {
	// A triage page: 100 codes as the store reads them.
	str := func(s string) *string { return &s }
	at := time.Date(2026, 11, 30, 21, 5, 7, 123456000, time.UTC)
	yes := true
	codes := make([]lifecycle.AccessCode, 100)
	for i := range codes {
		codes[i] = lifecycle.AccessCode{AccessCodeID: "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e", WorkspaceID: str("680d7c60-0a92-4e78-85bd-cb45155576b9"),
			DeviceID: str("b2c5d123-c7da-44be-ac72-4ad4ca56dbd8"), ConnectedAccountID: str("9792ea0f-b48d-4fff-9d10-bb08bc1ca16a"),
			DeletionState: lifecycle.AwaitingRemoval, OnDevice: &yes, NeedsTroubleshooting: true, TroubleshootingReason: str(lifecycle.ReasonOverdue),
			TroubleshootingDetails: json.RawMessage(`{"device_errors": [], "device_warnings": [], "access_code_errors": [], "access_code_warnings": []}`),
			CreatedAt:              &at, SetOnDeviceAt: &at, DeletedAt: &at, LastEventAt: &at, UpdatedAt: at,
			TroubleshootingSeverity: str("warning"), LockOnline: &yes}
	}
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf = appendCodesJSON(buf[:0], codes)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		var buf bytes.Buffer
		for range b.N {
			buf.Reset()
			_ = json.NewEncoder(&buf).Encode(codes)
		}
	})
}
