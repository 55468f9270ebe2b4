package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// attackLabel names the codes of the signed load that runs during the attack.
const attackLabel = 9000

// attackReport is what the memory-attack phase measured.
type attackReport struct {
	attackers    int
	uploads      int64
	byStatus     map[int]int64
	netErrors    int64
	signed       levelStats
	signedLoad   *levelLoad
	peakRSSKiB   int64
	baseRSSKiB   int64
	clearedPeaks bool
	cpu          cpuSample
	wall         time.Duration
	ingestP99    float64 // seconds, the service's own histogram
}

// runAttack runs attackers concurrent 1 MiB uploads with forged signatures
// (headers present and current, so each must be read and checked) for
// warmup+measure, while 8 workers send signed events; it samples the
// service's RSS throughout. The uploads come from a child process at the
// lowest CPU priority: a real attacker's CPU is on its own machines, and on
// this 2-core box the senders would otherwise starve the service of CPU
// (what the service spends receiving and refusing them is still counted).
func runAttack(ctx context.Context, d *driver, svc *service, pmPID, attackers int, warmup, measure time.Duration) (*attackReport, error) {
	rep := &attackReport{attackers: attackers, byStatus: map[int]int64{}}
	// Peak RSS from here on: writing 5 to clear_refs resets VmHWM.
	rep.clearedPeaks = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", svc.pid), []byte("5"), 0) == nil
	_, rep.baseRSSKiB = memKB(svc.pid)

	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-attack-child", d.url, "-attackers", strconv.Itoa(attackers),
		"-duration", (warmup + measure).String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 19)

	stopSampling := make(chan struct{})
	sampled := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				sampled <- peak
				return
			case <-t.C:
				_, rss := memKB(svc.pid)
				peak = max(peak, rss)
			}
		}
	}()
	c0 := sampleCPU(svc.pid, pmPID)
	m0, _ := scrape(ctx, http.DefaultClient, svc.opsURL+"/metrics")
	rep.signedLoad = d.runLevelAs(ctx, attackLabel, 8, warmup, measure)
	werr := cmd.Wait()
	c1 := sampleCPU(svc.pid, pmPID)
	m1, _ := scrape(ctx, http.DefaultClient, svc.opsURL+"/metrics")
	rep.cpu, rep.wall = c1.sub(c0), c1.at.Sub(c0.at)
	rep.ingestP99 = histogramOf(m1, ingestHistogram).sub(histogramOf(m0, ingestHistogram)).quantile(0.99)
	close(stopSampling)
	peak := <-sampled
	if werr != nil {
		return nil, fmt.Errorf("attacker: %v: %s", werr, out.String())
	}
	var res attackResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("attacker output %q: %v", out.String(), err)
	}
	hwm, _ := memKB(svc.pid)
	if rep.clearedPeaks {
		peak = max(peak, hwm)
	}
	rep.peakRSSKiB = peak
	rep.uploads, rep.netErrors, rep.byStatus = res.Uploads, res.NetErrors, res.ByStatus
	rep.signed = rep.signedLoad.stats()
	return rep, nil
}

// attackResult is what the attacking child reports on stdout.
type attackResult struct {
	Uploads   int64         `json:"uploads"`
	NetErrors int64         `json:"net_errors"`
	ByStatus  map[int]int64 `json:"by_status"`
}

// attackChild is the child process: it uploads until the time is up and
// prints an attackResult.
func attackChild(url string, attackers int, d time.Duration, stdout io.Writer) int {
	body := bytes.Repeat([]byte("x"), 1<<20)
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: attackers, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	end := time.Now().Add(d)
	var mu sync.Mutex
	res := attackResult{ByStatus: map[int]int64{}}
	var uploads, netErrs atomic.Int64
	var wg sync.WaitGroup
	for range attackers {
		wg.Go(func() {
			sig := make([]byte, 32)
			for time.Now().Before(end) {
				_, _ = rand.Read(sig)
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("svix-id", "msg_forged")
				req.Header.Set("svix-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
				req.Header.Set("svix-signature", "v1,"+base64.StdEncoding.EncodeToString(sig))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				uploads.Add(1)
				if err != nil {
					netErrs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				res.ByStatus[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Uploads, res.NetErrors = uploads.Load(), netErrs.Load()
	_ = json.NewEncoder(stdout).Encode(res)
	return 0
}

func printAttack(w io.Writer, r *attackReport) {
	fmt.Fprintf(w, "\n## unverified bodies: %d concurrent forged 1 MiB uploads while 8 workers send signed events\n", r.attackers)
	fmt.Fprintf(w, "  uploads %d (%v by status, %d without an answer)\n", r.uploads, r.byStatus, r.netErrors)
	fmt.Fprintf(w, "  signed events: %.0f/s, p50 %.1f ms, p99 %.1f ms, %d of %d not 2xx\n",
		r.signed.eventsPerSec, ms(r.signed.p50), ms(r.signed.p99), r.signed.errors, r.signed.started)
	how := "sampled every 50 ms"
	if r.clearedPeaks {
		how = "VmHWM reset before the attack"
	}
	fmt.Fprintf(w, "  service RSS: %.1f MiB before, peak %.1f MiB (%s)\n", kib(r.baseRSSKiB), kib(r.peakRSSKiB), how)
	fmt.Fprintf(w, "  CPU: service %.2f cores, Postgres %.2f, driver %.2f, others (the attacker) %.2f; service's ingest p99 (verified to committed) %.1f ms\n",
		cores(r.cpu.service, r.wall), cores(r.cpu.postgres, r.wall), cores(r.cpu.driver, r.wall), cores(r.cpu.other(), r.wall), r.ingestP99*1000)
}
