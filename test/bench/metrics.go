package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// promSample maps a series ("name{labels}" as exposed) to its value.
type promSample map[string]float64

// parseProm reads the Prometheus text exposition format (enough of it for
// counters and histograms: no timestamps, no escaped label values needed).
func parseProm(r io.Reader) (promSample, error) {
	out := promSample{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The value follows the last space outside the label set.
		cut := strings.LastIndexByte(line, '}')
		rest := line
		if cut >= 0 {
			rest = line[cut+1:]
		} else {
			cut = strings.IndexByte(line, ' ') - 1
			if cut < 0 {
				continue
			}
			rest = line[cut+1:]
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		out[line[:cut+1]] = v
	}
	return out, sc.Err()
}

func scrape(ctx context.Context, client *http.Client, url string) (promSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return parseProm(resp.Body)
}

// histogram is a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	bounds []float64 // ascending, +Inf last
	counts []float64 // cumulative
	sum    float64
	count  float64
}

// histogramOf extracts histogram name from a sample.
func histogramOf(s promSample, name string) histogram {
	var h histogram
	type b struct{ le, n float64 }
	var bs []b
	prefix := name + `_bucket{le="`
	for k, v := range s {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		leStr := strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)
		le, err := strconv.ParseFloat(leStr, 64)
		if err != nil {
			continue
		}
		bs = append(bs, b{le, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.bounds = append(h.bounds, x.le)
		h.counts = append(h.counts, x.n)
	}
	h.sum, h.count = s[name+"_sum"], s[name+"_count"]
	return h
}

// sub is the histogram of observations between b and h.
func (h histogram) sub(b histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts)), sum: h.sum - b.sum, count: h.count - b.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(b.counts) {
			out.counts[i] -= b.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly inside the bucket holding rank q, as
// Prometheus' histogram_quantile does.
func (h histogram) quantile(q float64) float64 {
	if len(h.counts) == 0 {
		return math.NaN()
	}
	total := h.counts[len(h.counts)-1]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, prev := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			upper := h.bounds[i]
			if math.IsInf(upper, 1) {
				return lower
			}
			if c == prev {
				return upper
			}
			return lower + (upper-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = h.bounds[i], c
	}
	return lower
}

func (h histogram) mean() float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// sumMatching adds the series of name whose labels contain every fragment.
func sumMatching(s promSample, name string, fragments ...string) float64 {
	var t float64
	for k, v := range s {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		all := true
		for _, f := range fragments {
			if !strings.Contains(k, f) {
				all = false
				break
			}
		}
		if all {
			t += v
		}
	}
	return t
}
