package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/codewatch/codewatch/datakeys"
)

// ParseDataKeys reads CODEWATCH_DATA_KEYS (datakeys.Parse). Its errors never
// quote key material; the "datakeys: " prefix is dropped, since the caller
// names the variable.
func ParseDataKeys(s string) (*datakeys.Keyring, error) {
	kr, err := datakeys.Parse(s)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "datakeys: "))
	}
	return kr, nil
}

// ParseCIDRs reads "10.0.0.0/8, 192.168.1.7": networks, or single addresses.
func ParseCIDRs(list string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip := net.ParseIP(f)
			if ip == nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", f)
			}
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, n, err := net.ParseCIDR(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// ParseTokens reads "name:token,token2,...". A bare token is named "ops-N".
func ParseTokens(list string) ([]Token, error) {
	var out []Token
	for i, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		tok := Token{Name: fmt.Sprintf("ops-%d", i+1), Value: t}
		if name, value, ok := strings.Cut(t, ":"); ok {
			tok = Token{Name: name, Value: value}
		}
		if tok.Name == "" || len(tok.Value) < 16 {
			return nil, fmt.Errorf("token %d must be at least 16 characters (name:token or token)", i+1)
		}
		out = append(out, tok)
	}
	if len(out) == 0 {
		return nil, errors.New("no token given")
	}
	return out, nil
}

// ParseDuration accepts Go durations ("30s", "4h") and days ("90d"); "0" is 0.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration like 30s, 30m, 4h or 90d", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30s, 30m, 4h or 90d", s)
	}
	return v, nil
}

// ParseSize reads a byte count: 33554432, 32MiB, 512KiB, 1GiB.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size like 32MiB", s)
	}
	return n * mult, nil
}
