// Package mbox reads messages from the mail archives other desks export: mbox files (RFC 4155,
// mboxrd and mboxo quoting), Maildir folders (cur/ and new/) and directories of .eml files.
package mbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Source is one message of an archive: its position (1-based, stable for the same archive) and a
// way to read it.
type Source struct {
	Index int
	Name  string // file name, or "mbox#N"
	Read  func() ([]byte, error)
}

// Open lists the messages at path: an mbox file, a single .eml file, a Maildir or a directory of
// message files (searched recursively, sorted by path so indexes are stable across runs).
func Open(path string) ([]Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open archive: %w", err)
		}
		defer f.Close()
		head := make([]byte, 5)
		n, _ := io.ReadFull(f, head)
		if string(head[:n]) == "From " {
			return readMbox(path)
		}
		return []Source{{Index: 1, Name: filepath.Base(path), Read: func() ([]byte, error) { return os.ReadFile(path) }}}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "tmp" && p != path {
				return filepath.SkipDir // Maildir delivery in progress
			}
			return nil
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") || name == "MANIFEST.tsv" || strings.HasSuffix(name, ".md") {
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", path, err)
	}
	sort.Strings(files)
	out := make([]Source, 0, len(files))
	for i, p := range files {
		out = append(out, Source{Index: i + 1, Name: p, Read: func() ([]byte, error) { return os.ReadFile(p) }})
	}
	return out, nil
}

// readMbox splits an mbox file at "From " separator lines (RFC 4155 §2) and undoes ">From " quoting.
func readMbox(path string) ([]Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mbox: %w", err)
	}
	msgs := Split(data)
	out := make([]Source, len(msgs))
	for i, m := range msgs {
		out[i] = Source{Index: i + 1, Name: fmt.Sprintf("%s#%d", filepath.Base(path), i+1), Read: func() ([]byte, error) { return m, nil }}
	}
	return out, nil
}

// Split returns the messages of an mbox, each without its separator line and with one level of
// ">From " quoting removed (mboxrd: any number of '>' before "From " loses one).
func Split(data []byte) [][]byte {
	var (
		out [][]byte
		cur *bytes.Buffer
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), len(data)+1)
	sc.Split(scanLinesKeepEnd)
	prevBlank := true
	for sc.Scan() {
		line := sc.Bytes()
		if prevBlank && isSeparator(line) {
			if cur != nil {
				out = append(out, trimTrailingBlank(cur.Bytes()))
			}
			cur = new(bytes.Buffer)
			prevBlank = false
			continue
		}
		trimmed := bytes.TrimLeft(line, ">")
		if len(trimmed) < len(line) && bytes.HasPrefix(trimmed, []byte("From ")) {
			line = line[1:]
		}
		if cur != nil {
			cur.Write(line)
		}
		prevBlank = len(bytes.TrimRight(line, "\r\n")) == 0
	}
	if cur != nil {
		out = append(out, trimTrailingBlank(cur.Bytes()))
	}
	return out
}

// isSeparator reports whether line looks like an RFC 4155 From_ line: "From ", an address, a space,
// and a date (we require a digit), so that an unquoted "From here on..." paragraph is not a separator.
func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("From ")) {
		return false
	}
	rest := bytes.TrimRight(line[5:], "\r\n")
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return false
	}
	return bytes.ContainsAny(rest[sp:], "0123456789")
}

func scanLinesKeepEnd(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	if atEOF {
		return 0, nil, io.EOF
	}
	return 0, nil, nil
}

// trimTrailingBlank removes the blank line that separates a message from the next "From " line.
func trimTrailingBlank(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		return b[:len(b)-2]
	}
	if bytes.HasSuffix(b, []byte("\n\n")) {
		return b[:len(b)-1]
	}
	return b
}

// ErrEmpty is returned by callers when an archive holds no message.
var ErrEmpty = errors.New("archive holds no message")
