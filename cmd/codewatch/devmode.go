package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/codewatch/codewatch/config"
	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/localpg"
	"github.com/codewatch/codewatch/verify"
)

// devState is what a development `serve` shares with `send` and the user:
// kept in the data directory so it survives restarts.
type devState struct {
	WebhookSecret string `json:"webhook_secret"`
	OpsToken      string `json:"ops_token"`
	WebhookURL    string `json:"webhook_url"`
	OpsURL        string `json:"ops_url"`
	// DataKeys encrypt the development database's stored bodies
	// (CODEWATCH_DATA_KEYS). Generated once and kept: without it those
	// bodies cannot be read.
	DataKeys string `json:"data_keys"`
}

func devStatePath(dataDir string) string { return filepath.Join(dataDir, "dev.json") }

func readDevState(dataDir string) (*devState, error) {
	b, err := os.ReadFile(devStatePath(dataDir))
	if err != nil {
		return nil, err
	}
	var s devState
	return &s, json.Unmarshal(b, &s)
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func localURL(addr net.Addr, path string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + path
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path
}

// devMode starts (or finds) the development Postgres under cfg.DataDir, fills
// in generated credentials kept beside it, and prints the banner with the
// addresses really bound. The returned stop stops Postgres only if this
// process started it: a second `make run` must not take the first one's
// database down.
func devMode(ctx context.Context, cfg *config.Config, pub, ops net.Addr, logger *slog.Logger, stdout io.Writer) (stop func(), err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("CODEWATCH_DATA_DIR: %w", err)
	}
	dir := filepath.Join(cfg.DataDir, "pg")
	logger.Info("DATABASE_URL is unset: using a local Postgres", "dir", dir)
	db, err := localpg.Start(ctx, dir, localpg.Options{})
	if err != nil {
		return nil, fmt.Errorf("start local Postgres: %w", err)
	}
	stop = func() {}
	if db.Started {
		stop = func() {
			if err := db.Stop("fast"); err != nil {
				logger.Warn("stop local Postgres", "error", err)
			}
		}
	}
	cfg.DatabaseURL = db.URL("codewatch")
	st, _ := readDevState(cfg.DataDir)
	if st == nil {
		st = &devState{}
	}
	if st.WebhookSecret == "" {
		st.WebhookSecret = verify.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(randomToken(18))[:24])
	}
	if st.OpsToken == "" {
		st.OpsToken = randomToken(24)
	}
	if len(cfg.WebhookSecrets) == 0 {
		cfg.WebhookSecrets = []string{st.WebhookSecret}
	} else {
		st.WebhookSecret = cfg.WebhookSecrets[0]
	}
	if len(cfg.OpsTokens) == 0 {
		cfg.OpsTokens = []config.Token{{Name: "dev", Value: st.OpsToken}}
	} else {
		st.OpsToken = cfg.OpsTokens[0].Value
	}
	// Unlike the other secrets, a CODEWATCH_DATA_KEYS given for one run
	// does not replace the kept key: the database's bodies need that one.
	if st.DataKeys == "" {
		if st.DataKeys, err = datakeys.Generate(devKeyID); err != nil {
			stop()
			return nil, err
		}
	}
	if cfg.DataKeys == nil {
		if cfg.DataKeys, err = config.ParseDataKeys(st.DataKeys); err != nil {
			stop()
			return nil, fmt.Errorf("%s: data_keys: %w", devStatePath(cfg.DataDir), err)
		}
	}
	st.WebhookURL = localURL(pub, "/webhooks/seam")
	st.OpsURL = localURL(ops, "")
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(devStatePath(cfg.DataDir), b, 0o600); err != nil {
		stop()
		return nil, err
	}
	fmt.Fprintf(stdout, `
codewatch (development mode: local Postgres in %s)
  listening:       %s, %s
  webhook URL:     %s
  webhook secret:  %s
  ops API:         %s/v1/summary   (Authorization: Bearer %s)
  console:         %s/console/   (sign in with the same token)
  try:             go run ./cmd/codewatch send access_code.deleted --access-code-id %s

`, dir, boundTo(pub, "webhooks"), boundTo(ops, "ops"), st.WebhookURL, st.WebhookSecret, st.OpsURL, st.OpsToken, st.OpsURL, exampleID())
	return stop, nil
}

// boundTo names a listener's address as bound. Go reports 0.0.0.0 as [::]
// (one socket for IPv4 and IPv6): say plainly that it is every interface.
func boundTo(a net.Addr, what string) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return fmt.Sprintf("%s (%s, on every interface)", a, what)
	}
	return fmt.Sprintf("%s (%s)", a, what)
}

func exampleID() string { return "727c20c2-43cd-4ca4-8ed8-d1bb5b7c966e" }
