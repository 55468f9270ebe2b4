// Package quietlog turns a library's chatter down: River logs its own
// machinery at info level, which drowns codewatch's lines.
package quietlog

import (
	"context"
	"log/slog"
)

// Warn returns a logger that passes on l's warnings and errors only.
func Warn(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(floor{l.Handler()})
}

type floor struct{ slog.Handler }

func (h floor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h floor) WithAttrs(a []slog.Attr) slog.Handler { return floor{h.Handler.WithAttrs(a)} }
func (h floor) WithGroup(n string) slog.Handler      { return floor{h.Handler.WithGroup(n)} }
