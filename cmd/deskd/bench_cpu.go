package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// benchCPU is where the machine's CPU went during the bulk ingest: CPU time per ingested message
// by deskd (this process, which includes the bench's discarding SMTP relay), PostgreSQL (every
// local process named postgres), the mail server (the local Dovecot processes) and everything else,
// read from /proc. cpu_bound_msgs_per_sec is what the machine could reach if all its cores did
// nothing but this work at the same cost per message: the ceiling that no scheduling or overlap can
// lift, only a lower cost per message.
type benchCPU struct {
	WindowSeconds      float64 `json:"window_seconds"`
	MachineBusy        float64 `json:"machine_busy_fraction"` // of all cores, from /proc/stat
	DeskdMsPerMsg      float64 `json:"deskd_ms_per_msg"`
	PostgresMsPerMsg   float64 `json:"postgres_ms_per_msg"`
	MailServerMsPerMsg float64 `json:"mailserver_ms_per_msg"`
	OtherMsPerMsg      float64 `json:"other_ms_per_msg"` // busy time of the machine not in the three above
	TotalMsPerMsg      float64 `json:"total_ms_per_msg"` // all busy CPU time of the machine
	CPUBoundMsgsPerSec float64 `json:"cpu_bound_msgs_per_sec"`
}

// userHZ is the unit of /proc CPU times: USER_HZ, 100 on every Linux architecture deskd builds for.
const userHZ = 100

// mailServerComms are the process names of a Dovecot installation.
var mailServerComms = map[string]bool{"dovecot": true, "imap": true, "imap-login": true, "lmtp": true,
	"anvil": true, "log": true, "config": true, "auth": true, "stats": true, "indexer": true, "indexer-worker": true}

type cpuSnapshot struct {
	at          time.Time
	busy, total uint64            // machine, all cores, in ticks
	byGroup     map[string]uint64 // deskd, postgres, mailserver: ticks of the processes alive now
	ok          bool
}

// takeCPUSnapshot reads the machine's and each process's CPU time. Processes that exit inside the
// window lose their share to "other" (deskd's, PostgreSQL's and Dovecot's live for the whole run).
func takeCPUSnapshot() cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), byGroup: map[string]uint64{}}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		s.total += n
		if i != 3 && i != 4 && i != 7 { // idle, iowait, steal (another guest's time)
			s.busy += n
		}
	}
	s.ok = true
	self := os.Getpid()
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		comm, ticks, ok := procTicks(path)
		if !ok {
			continue
		}
		switch {
		case pid == self:
			s.byGroup["deskd"] += ticks
		case comm == "postgres":
			s.byGroup["postgres"] += ticks
		case mailServerComms[comm]:
			s.byGroup["mailserver"] += ticks
		}
	}
	return s
}

// procTicks returns a /proc/PID/stat's command name and user+system time in ticks (proc(5)).
func procTicks(path string) (string, uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(string(b[end+1:])) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return "", 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return string(b[open+1 : end]), u + st, true
}

// cpuBetween turns two snapshots around the ingest of n messages on a machine with cores cores into
// per-message figures; nil when /proc could not be read.
func cpuBetween(a, b cpuSnapshot, n, cores int) *benchCPU {
	if !a.ok || !b.ok || n <= 0 || b.total <= a.total {
		return nil
	}
	perMsg := func(ticks uint64) float64 { return float64(ticks) * 1000 / userHZ / float64(n) }
	delta := func(g string) uint64 {
		if b.byGroup[g] < a.byGroup[g] {
			return 0
		}
		return b.byGroup[g] - a.byGroup[g]
	}
	busy := b.busy - a.busy
	c := &benchCPU{
		WindowSeconds:      b.at.Sub(a.at).Seconds(),
		MachineBusy:        float64(busy) / float64(b.total-a.total),
		DeskdMsPerMsg:      perMsg(delta("deskd")),
		PostgresMsPerMsg:   perMsg(delta("postgres")),
		MailServerMsPerMsg: perMsg(delta("mailserver")),
		TotalMsPerMsg:      perMsg(busy),
	}
	c.OtherMsPerMsg = max(0, c.TotalMsPerMsg-c.DeskdMsPerMsg-c.PostgresMsPerMsg-c.MailServerMsPerMsg)
	if c.TotalMsPerMsg > 0 {
		c.CPUBoundMsgsPerSec = float64(cores) * 1000 / c.TotalMsPerMsg
	}
	return c
}
