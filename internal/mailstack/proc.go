package mailstack

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startAttempts is how often a server start is tried with fresh ports: a
// free port is found by binding :0 and closing, so another process may take it
// before the server binds it.
const startAttempts = 3

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 300 * time.Millisecond

// retryOnPortClash calls start up to startAttempts times while it fails
// because a port it picked was taken in the meantime ("Address already in
// use" in the error or the log it carries).
func retryOnPortClash[T any](ctx context.Context, start func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range startAttempts {
		v, err = start()
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return v, err
}

// prepareDir makes dir (absolute) exist and reachable by the servers'
// unprivileged users.
func prepareDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", err
	}
	if err := ensureTraversable(abs); err != nil {
		return "", err
	}
	return abs, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitGreeting dials addr until the server sends a first line starting with
// prefix ("* OK" for IMAP, "220" for SMTP/LMTP), ctx ends, or exited is
// closed (the server process died).
func waitGreeting(ctx context.Context, addr, prefix string, exited <-chan struct{}) error {
	return waitGreetingTLS(ctx, addr, prefix, exited, nil)
}

// waitGreetingTLS is waitGreeting over TLS from the first byte when conf is not nil.
func waitGreetingTLS(ctx context.Context, addr, prefix string, exited <-chan struct{}, conf *tls.Config) error {
	var lastErr error
	for {
		lastErr = greet(ctx, addr, prefix, conf)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", addr, ctx.Err(), lastErr)
		case <-exited:
			return fmt.Errorf("wait for %s: server exited (last: %v)", addr, lastErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func greet(ctx context.Context, addr, prefix string, conf *tls.Config) error {
	d := net.Dialer{Timeout: time.Second}
	var (
		conn net.Conn
		err  error
	)
	if conf != nil {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: conf}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, prefix) {
		return fmt.Errorf("greeting %q, want %q", strings.TrimSpace(line), prefix)
	}
	return nil
}

// ids resolves a user name to its uid and primary gid.
func ids(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("parse uid of %s: %w", name, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("parse gid of %s: %w", name, err)
	}
	return uid, gid, nil
}

// ensureTraversable adds search permission for others (o+x, not read) to dir
// and to every ancestor that lacks it, so that the unprivileged users of
// Postfix and Dovecot can reach files below dir. t.TempDir() creates its
// directories with mode 0700.
func ensureTraversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("make %s traversable: %w", p, err)
			}
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// tail returns the last max bytes of a file, for error messages.
func tail(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := fi.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(buf)
}
