package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procStat is the CPU part of /proc/<pid>/stat, in seconds.
type procStat struct {
	ppid           int
	utime, stime   float64
	cutime, cstime float64 // waited-for children
	ok             bool
	comm           string
}

// parseProcStat reads a /proc/<pid>/stat line. comm may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	j := strings.IndexByte(line, '(')
	if i < 0 || j < 0 || j > i {
		return procStat{}, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short stat line")
	}
	num := func(k int) float64 {
		v, _ := strconv.ParseFloat(f[k], 64)
		return v / clockTicks
	}
	ppid, _ := strconv.Atoi(f[1])
	return procStat{ppid: ppid, utime: num(11), stime: num(12), cutime: num(13), cstime: num(14),
		ok: true, comm: line[j+1 : i]}, nil
}

func readProcStat(pid int) procStat {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}
	}
	st, err := parseProcStat(string(b))
	if err != nil {
		return procStat{}
	}
	return st
}

// memKB reads VmHWM (peak resident set) and VmRSS of pid, in KiB.
func memKB(pid int) (hwm, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	return parseStatusMem(bufio.NewScanner(f))
}

func parseStatusMem(sc *bufio.Scanner) (hwm, rss int64) {
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}

// cpuSample is the CPU seconds used so far by the service, by Postgres (the
// postmaster, its live children and the children it has reaped), by this
// driver, and by the whole machine.
type cpuSample struct {
	at          time.Time
	service     float64
	postgres    float64
	driver      float64
	machineBusy float64
	machineAll  float64
	machineIRQ  float64 // interrupt and softirq time (loopback TCP, block I/O), in no process
	// kernel time within service and postgres: syscalls, loopback TCP, fsync.
	serviceSys  float64
	postgresSys float64
	// others: CPU seconds of every other process and kernel thread, by pid;
	// after sub, the busiest of them.
	others map[int]otherProc
	top    []otherProc
}

type otherProc struct {
	pid  int
	comm string
	sec  float64
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{at: a.at, service: a.service - b.service, postgres: a.postgres - b.postgres,
		driver: a.driver - b.driver, machineBusy: a.machineBusy - b.machineBusy, machineAll: a.machineAll - b.machineAll, machineIRQ: a.machineIRQ - b.machineIRQ,
		serviceSys: a.serviceSys - b.serviceSys, postgresSys: a.postgresSys - b.postgresSys,
		top: topOthers(a.others, b.others, 3)}
}

// other is the machine's busy time not spent in the service, Postgres, the
// driver or interrupts: other processes and kernel threads.
func (a cpuSample) other() float64 {
	return max(a.machineBusy-a.machineIRQ-a.service-a.postgres-a.driver, 0)
}

// topOthers returns the n processes outside the benchmark that used the
// most CPU between b and a.
func topOthers(a, b map[int]otherProc, n int) []otherProc {
	var out []otherProc
	for pid, p := range a {
		if q, ok := b[pid]; ok && q.comm == p.comm {
			p.sec -= q.sec
		}
		if p.sec > 0 {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].sec > out[j].sec })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// sampleCPU takes a cpuSample; servicePID or postmasterPID 0 skip that part.
func sampleCPU(servicePID, postmasterPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	if servicePID > 0 {
		p := readProcStat(servicePID)
		s.service = p.utime + p.stime
		s.serviceSys = p.stime
	}
	self := readProcStat(os.Getpid())
	s.driver = self.utime + self.stime
	if postmasterPID > 0 {
		pm := readProcStat(postmasterPID)
		s.postgres = pm.utime + pm.stime + pm.cutime + pm.cstime
		s.postgresSys = pm.stime + pm.cstime
	}
	s.others = map[int]otherProc{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == postmasterPID || pid == servicePID || pid == os.Getpid() {
			continue
		}
		p := readProcStat(pid)
		switch {
		case !p.ok:
		case postmasterPID > 0 && p.ppid == postmasterPID:
			s.postgres += p.utime + p.stime
			s.postgresSys += p.stime
		default:
			s.others[pid] = otherProc{pid: pid, comm: p.comm, sec: p.utime + p.stime}
		}
	}
	s.machineBusy, s.machineAll, s.machineIRQ = machineCPU()
	return s
}

// machineCPU reads the aggregate "cpu" line of /proc/stat: busy and total
// seconds over all CPUs (idle and iowait are not busy).
func machineCPU() (busy, all, irq float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineCPU(line)
}

func parseMachineCPU(line string) (busy, all, irq float64) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, 0
	}
	var idle float64
	// user nice system idle iowait irq softirq steal (guest time is already
	// counted in user).
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		v /= clockTicks
		all += v
		switch i {
		case 4, 5:
			idle += v
		case 6, 7:
			irq += v
		}
	}
	return all - idle, all, irq
}

// postmasterPID reads the first line of postmaster.pid in a data directory.
func postmasterPID(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}
