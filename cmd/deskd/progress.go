package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress draws a progress bar on a terminal, or prints a line every few seconds otherwise, so
// long operations (imports, replays, benchmarks) always show where they are.
type progress struct {
	w        io.Writer
	label    string
	total    int
	done     int
	start    time.Time
	last     time.Time
	terminal bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.terminal = true
	}
	return p
}

// add advances the bar by n and redraws it at most every 100 ms (every 5 s off a terminal).
func (p *progress) add(n int) {
	p.done += n
	now := time.Now()
	every := 100 * time.Millisecond
	if !p.terminal {
		every = 5 * time.Second
	}
	if now.Sub(p.last) < every && p.done < p.total {
		return
	}
	p.last = now
	p.draw(now)
}

func (p *progress) draw(now time.Time) {
	rate := float64(p.done) / max(now.Sub(p.start).Seconds(), 1e-9)
	if !p.terminal {
		fmt.Fprintf(p.w, "%s: %d/%d (%.0f/s)\n", p.label, p.done, p.total, rate)
		return
	}
	const width = 30
	filled := width
	if p.total > 0 {
		filled = min(width, p.done*width/p.total)
	}
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %.0f/s ", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), p.done, p.total, rate)
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	p.draw(time.Now())
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}
