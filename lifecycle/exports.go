package lifecycle

import "time"

// DeletionRow is one deleted code as an export lists it (GET
// /v1/exports/deletions, codewatch export): one row per code whose
// deletion occurred in the export's period.
type DeletionRow struct {
	AccessCodeID   string        `json:"access_code_id"`
	AccessCodeName *string       `json:"access_code_name"`
	DeviceID       *string       `json:"device_id"`
	DeviceName     *string       `json:"device_name"`
	LocationName   *string       `json:"location_name"`
	WorkspaceID    *string       `json:"workspace_id"`
	DeletedAt      *time.Time    `json:"deleted_at"`
	ConfirmedAt    *time.Time    `json:"confirmed_at"`
	ConfirmedBy    *string       `json:"confirmed_by"`
	DeletionState  DeletionState `json:"deletion_state"`
	// TroubleshootingReasons is every reason the code needed
	// troubleshooting for, most urgent first.
	TroubleshootingReasons []string `json:"troubleshooting_reasons"`
	AcknowledgedBy         *string  `json:"acknowledged_by"`
}

// ExportFilter selects an export's codes: deleted at or after Since and
// before Until (zero: unbounded).
type ExportFilter struct {
	Since, Until time.Time
}

// ExportCursor is where the next chunk of an export starts: after the code
// deleted at At with row id ID.
type ExportCursor struct {
	At time.Time
	ID int64
}

// SortReasons orders reasons most urgent first (ReasonRank), dropping
// repeats.
func SortReasons(reasons []string) []string {
	out := make([]string, 0, len(reasons))
	seen := map[string]bool{}
	for _, r := range reasons {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && ReasonRank(out[j]) < ReasonRank(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
