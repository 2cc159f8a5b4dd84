package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds returns utime+stime of pid in seconds, or 0 when the process
// is gone.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name in field 2 may contain spaces and parentheses, so
	// the fixed fields are counted from the last closing parenthesis.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / clockTicks
}

// parentPID returns the parent of pid, or 0 when the process is gone.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// descendants returns every running process below root, children first,
// without root itself.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parents := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		parents[pid] = parentPID(pid)
	}
	var out []int
	frontier := []int{root}
	for len(frontier) > 0 {
		var next []int
		for pid, ppid := range parents {
			for _, p := range frontier {
				if ppid == p {
					next = append(next, pid)
				}
			}
		}
		out = append(out, next...)
		frontier = next
	}
	return out
}

// memoryKiB returns the VmRSS and VmHWM lines of /proc/<pid>/status in KiB.
func memoryKiB(pid int) (rss, hwm int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		var target *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			target = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			target = &hwm
		default:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 {
			*target, _ = strconv.ParseInt(fields[1], 10, 64)
		}
	}
	return rss, hwm
}

// resetPeakRSS sets VmHWM of pid back to its current RSS (writing 5 to
// clear_refs, Linux 4.0 and later), so the next VmHWM read is the peak
// since this call. It needs the right to write the process's clear_refs,
// which root and the process's owner have.
func resetPeakRSS(pid int) {
	os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// busyProcesses returns the processes outside own that used more than
// 5% of one CPU over a one-second sample, as "pid command (percent)".
func busyProcesses(own map[int]bool) []string {
	sample := func() map[int]float64 {
		out := map[int]float64{}
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if pid, err := strconv.Atoi(e.Name()); err == nil && !own[pid] {
				out[pid] = cpuSeconds(pid)
			}
		}
		return out
	}
	before := sample()
	time.Sleep(time.Second)
	after := sample()
	var busy []string
	for pid, cpu := range after {
		if used := cpu - before[pid]; used > 0.05 {
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			command := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
			if len(command) > 80 {
				command = command[:80] + "…"
			}
			busy = append(busy, fmt.Sprintf("%d %s (%.0f%%)", pid, command, used*100))
		}
	}
	return busy
}
