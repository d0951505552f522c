// Package corpustest finds the shared real-world message corpus (../shared/corpus, MANIFEST.tsv)
// for the tests of other packages. A test that needs it skips with a message when it is absent and
// fails instead when the CI environment variable is set, so CI can never pass without it.
package corpustest

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Dir returns the corpus directory: $DESKD_CORPUS, else ../shared/corpus beside the module root.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("DESKD_CORPUS")
	if dir == "" {
		root, err := Root()
		if err != nil {
			t.Fatalf("find module root: %v", err)
		}
		dir = filepath.Join(root, "..", "shared", "corpus")
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.tsv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("corpus not found at %s (set DESKD_CORPUS): %v", dir, err)
		}
		t.Skipf("corpus not found at %s (set DESKD_CORPUS to run): %v", dir, err)
	}
	return dir
}

// Root returns the module root: the nearest directory above the working directory with a go.mod.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Row is one message row of MANIFEST.tsv.
type Row struct {
	Path, Category, Exercises, Expected string
}

// Manifest reads the message rows of dir/MANIFEST.tsv (columns path, source_repo, source_path,
// license, category, exercises, expected), skipping the header and expected-output files.
func Manifest(t testing.TB, dir string) []Row {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatalf("open manifest: %v", err)
	}
	defer f.Close()
	var rows []Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for first := true; sc.Scan(); first = false {
		if first {
			continue // header row
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) < 7 {
			t.Fatalf("manifest row with %d columns: %q", len(c), sc.Text())
		}
		if strings.HasPrefix(c[6], "expected_for=") {
			continue // an expected-output file, not a message
		}
		rows = append(rows, Row{Path: c[0], Category: c[4], Exercises: c[5], Expected: c[6]})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	return rows
}
