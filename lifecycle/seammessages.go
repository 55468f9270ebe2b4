package lifecycle

import (
	"encoding/json"
	"sort"
	"strings"
)

// SeamMessage is one of Seam's errors or warnings in troubleshooting
// details or an event's details.
type SeamMessage struct {
	Level string // error or warning
	Scope string // what it is about, as Seam's key names it: access_code, device, connected_account
	Code  string // Seam's error_code or warning_code
	Text  string // Seam's message
}

// SeamMessages reads Seam's errors and warnings out of details (every
// *_errors and *_warnings array; details also holds event_id and other
// fields, which it skips): errors first, then by key. An item with neither
// a message nor a code says nothing and is left out. The alert text and the
// console both read them here.
func SeamMessages(details json.RawMessage) []SeamMessage {
	if len(details) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(details, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool {
		ei, ej := strings.HasSuffix(keys[i], "_errors"), strings.HasSuffix(keys[j], "_errors")
		if ei != ej {
			return ei
		}
		return keys[i] < keys[j]
	})
	var out []SeamMessage
	for _, key := range keys {
		scope, ok := strings.CutSuffix(key, "_errors")
		level := "error"
		if !ok {
			if scope, ok = strings.CutSuffix(key, "_warnings"); !ok {
				continue
			}
			level = "warning"
		}
		var items []struct {
			Message     string `json:"message"`
			ErrorCode   string `json:"error_code"`
			WarningCode string `json:"warning_code"`
		}
		if json.Unmarshal(m[key], &items) != nil {
			continue
		}
		for _, it := range items {
			code := it.ErrorCode
			if code == "" {
				code = it.WarningCode
			}
			if it.Message == "" && code == "" {
				continue
			}
			out = append(out, SeamMessage{Level: level, Scope: scope, Code: code, Text: it.Message})
		}
	}
	return out
}
