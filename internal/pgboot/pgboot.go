// Package pgboot finds or makes a PostgreSQL database for `deskd demo` and `deskd bench`: it
// creates the named database on a reachable server, or, when none answers but the PostgreSQL
// server binaries are installed, starts a private throwaway cluster in a temporary directory.
package pgboot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is a usable database and how to let it go.
type Database struct {
	URL     string
	Private bool   // a throwaway cluster started by Ensure
	Dir     string // its data directory
	stop    func() error
}

// Close stops a private cluster and removes its directory; for an existing server it does nothing.
func (d *Database) Close() error {
	if d.stop == nil {
		return nil
	}
	return d.stop()
}

// ThrowawayURL is where a throwaway database for word ("demo", "bench") lives: the server of
// DATABASE_URL (default 127.0.0.1:5432, user postgres) and, unless DATABASE_URL already names a
// database containing word, the database deskd_<word>, so that a DATABASE_URL pointing at real data
// is never the one EnsureFresh drops.
func ThrowawayURL(word string) string {
	raw := os.Getenv("DATABASE_URL")
	if raw == "" {
		return "postgres://postgres@127.0.0.1:5432/deskd_" + word + "?sslmode=disable"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if !strings.Contains(u.Path, word) {
		u.Path = "/deskd_" + word
	}
	return u.String()
}

// EnsureFresh returns a newly created, empty database at rawURL, for throwaway state (the demo,
// benchmarks): it drops and recreates the database when the server answers. When no server answers
// and initdb/pg_ctl are installed it starts a private cluster instead (note says so). Otherwise the
// error says how to get PostgreSQL. To protect real data it refuses a database whose name does not
// contain "demo" or "bench".
func EnsureFresh(ctx context.Context, rawURL string, note func(string)) (*Database, error) {
	return ensure(ctx, rawURL, true, note)
}

func ensure(ctx context.Context, rawURL string, fresh bool, note func(string)) (*Database, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		name = "deskd_demo"
		u.Path = "/" + name
	}
	if fresh && !strings.Contains(name, "demo") && !strings.Contains(name, "bench") {
		return nil, fmt.Errorf("refusing to recreate database %q: only throwaway databases named *demo* or *bench* are recreated", name)
	}
	if fresh {
		if err := dropDatabase(ctx, u, name); err != nil && !unreachable(err) {
			return nil, err
		}
	}
	err = createIfMissing(ctx, u, name)
	if err == nil {
		return &Database{URL: u.String()}, nil
	}
	if !unreachable(err) {
		return nil, err
	}
	bin, ferr := serverBinDir()
	if ferr != nil {
		return nil, fmt.Errorf("no PostgreSQL answers at %s (%v) and none is installed to start a private one: "+
			"install it (`apt-get install -y postgresql`, or `make pg`) or set DATABASE_URL", u.Host, err)
	}
	note(fmt.Sprintf("no PostgreSQL answers at %s; starting a private throwaway cluster with %s", u.Host, bin))
	return startPrivate(ctx, bin, name)
}

func createIfMissing(ctx context.Context, u *url.URL, name string) error {
	admin := *u
	admin.Path = "/postgres"
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(cctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(cctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		var again bool
		if qerr := conn.QueryRow(cctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&again); qerr == nil && again {
			return nil // created concurrently
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, u *url.URL, name string) error {
	admin := *u
	admin.Path = "/postgres"
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(cctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// unreachable reports whether err means no server answered (as opposed to a refused login).
func unreachable(err error) bool {
	var ne *net.OpError
	if errors.As(err, &ne) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") ||
		strings.Contains(s, "dial error") || strings.Contains(s, "timeout")
}

// serverBinDir finds the directory holding initdb and pg_ctl.
func serverBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("initdb not found")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func startPrivate(ctx context.Context, bin, name string) (*Database, error) {
	dir, err := os.MkdirTemp("", "deskd-pg-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// PostgreSQL refuses to run as root: run it as the postgres system user then.
	var asUser []string
	if os.Geteuid() == 0 {
		pgUser, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, errors.New("running as root and there is no postgres system user to run a private cluster as")
		}
		uid, _ := strconv.Atoi(pgUser.Uid)
		gid, _ := strconv.Atoi(pgUser.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		full := append(append([]string{}, asUser...), args...)
		cmd := exec.CommandContext(ctx, full[0], full[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := func() error {
		err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
		os.RemoveAll(dir)
		return err
	}
	u := &url.URL{Scheme: "postgres", User: url.User("postgres"), Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/" + name,
		RawQuery: "sslmode=disable"}
	if err := createIfMissing(ctx, u, name); err != nil {
		stop()
		return nil, err
	}
	return &Database{URL: u.String(), Private: true, Dir: dir, stop: stop}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
