package mailin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskd/deskd/mailin"
)

// implicitTLSProxy terminates TLS on a loopback port and relays to a plaintext IMAP server, like
// an IMAPS port (RFC 8314 §3.2) in front of memmail. It returns the address and a client
// configuration that trusts its self-signed certificate.
func implicitTLSProxy(t *testing.T, backend string) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}})
	if err != nil {
		t.Fatal(err)
	}
	relay(t, ln, backend, 0, nil)
	return ln.Addr().String(), &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// relay accepts connections on ln and relays each to backend until ln is closed at the end of the
// test. A non-zero lifetime cuts every connection after a random time up to lifetime, as a flaky
// network would. A non-nil tap also gets what the clients send.
func relay(t *testing.T, ln net.Listener, backend string, lifetime time.Duration, tap io.Writer) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			if lifetime > 0 {
				d := time.Duration(mrand.Int64N(int64(lifetime)))
				cut := time.AfterFunc(d, func() {
					c.Close()
					b.Close()
				})
				t.Cleanup(func() { cut.Stop() })
			}
			wg.Add(2)
			pipe := func(dst, src net.Conn, tap io.Writer) {
				defer wg.Done()
				var w io.Writer = dst
				if tap != nil {
					w = io.MultiWriter(dst, tap)
				}
				io.Copy(w, src) //nolint:errcheck // a relay ends when either side closes
				dst.Close()
				src.Close()
			}
			go pipe(b, c, tap)
			go pipe(c, b, nil)
		}
	}()
}

// TestPollerExactlyOnceOverFlakyNetwork cuts every IMAP connection after a random time while mail
// keeps arriving: every message must still become exactly one ticket.
func TestPollerExactlyOnceOverFlakyNetwork(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay(t, ln, h.mail.addr(), 150*time.Millisecond, nil)
	var logs logBuffer
	o := pollOptions(logs.logger())
	o.IdleRefresh = 50 * time.Millisecond
	h.start(pollMailbox(t, ln.Addr().String()), o)
	const n = 40
	for range n / 4 {
		h.appendMail(4)
		time.Sleep(20 * time.Millisecond)
	}
	h.waitTickets(n, 20*time.Second)
	h.waitAllSeen(h.folder, n)
	h.assertExactlyOnce(n)
	cuts := strings.Count(logs.String(), "mailbox session failed")
	if cuts == 0 {
		t.Errorf("no session was cut; the test proves nothing:\n%s", logs.String())
	}
	t.Logf("%d messages exactly once across %d cut connections", n, cuts)
}

func TestPollerImplicitTLS(t *testing.T) {
	t.Parallel()
	h := newPollHarness(t, startMemmail(t))
	addr, clientTLS := implicitTLSProxy(t, h.mail.addr())
	mb := pollMailbox(t, addr)
	mb.TLS = mailin.TLSImplicit
	o := pollOptions(nil)
	o.TLSConfig = clientTLS
	h.start(mb, o)
	h.appendMail(2)
	h.waitTickets(2, 5*time.Second)
	h.waitAllSeen(h.folder, 2)

	// an untrusted certificate is refused: nothing more is fetched
	o.TLSConfig = nil
	o.Log = nil
	h2 := newPollHarness(t, h.mail)
	h2.start(mb, o)
	h.appendMail(1)
	h.waitTickets(3, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if n := h2.count(`SELECT count(*) FROM raw_mails`); n != 0 {
		t.Errorf("a poller that does not trust the certificate stored %d messages", n)
	}
}

// TestPollerMovesABacklogWithOneCommand loads a folder with four chunks of mail: the poller flags
// and moves them together, with one STORE and one MOVE, not a pair of commands per chunk (a maildir
// server re-reads the folder's directory after each, which cost Dovecot more than the FETCH).
func TestPollerMovesABacklogWithOneCommand(t *testing.T) {
	t.Parallel()
	const n = 350 // four chunks
	h, mb, sent := relayedBacklog(t, n)
	h.start(mb, pollOptions(nil))
	h.waitTickets(n, 60*time.Second)
	h.waitAllSeen("Processed", n)
	h.assertExactlyOnce(n)
	var moves, stores int
	for line := range strings.Lines(sent.String()) {
		if f := strings.Fields(line); len(f) >= 3 && strings.EqualFold(f[1], "UID") {
			switch strings.ToUpper(f[2]) {
			case "MOVE":
				moves++
			case "STORE":
				stores++
			}
		}
	}
	if moves != 1 || stores != 1 {
		t.Errorf("the poller sent %d UID MOVE and %d UID STORE commands for %d messages, want 1 of each; it sent:\n%s",
			moves, stores, n, commandNames(sent.String()))
	}
}

// relayedBacklog is a folder of n new messages behind a relay that logs what the poller sends, and
// a mailbox through the relay with a processed folder.
func relayedBacklog(t *testing.T, n int) (*pollHarness, mailin.MailboxConfig, *logBuffer) {
	t.Helper()
	h := newPollHarness(t, startMemmail(t))
	for range n {
		h.mail.appendMsg(t, h.folder, h.newMail(""))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sent := &logBuffer{}
	relay(t, ln, h.mail.addr(), 0, sent)
	mb := pollMailbox(t, ln.Addr().String())
	mb.ProcessedFolder = "Processed"
	return h, mb, sent
}

// commandNames lists the commands of an IMAP client's stream, without their arguments.
func commandNames(stream string) string {
	var b strings.Builder
	for line := range strings.Lines(stream) {
		if f := strings.Fields(line); len(f) >= 2 {
			name := f[1]
			if strings.EqualFold(name, "UID") && len(f) >= 3 {
				name += " " + f[2]
			}
			b.WriteString(name + "\n")
		}
	}
	return b.String()
}

// TestPollerFlagsABacklogOnASecondConnection: in a backlog larger than the flagging batch, the
// processed mail is flagged and moved on a second connection while the first goes on fetching, and
// every message still ends up ingested once, seen and in the processed folder.
func TestPollerFlagsABacklogOnASecondConnection(t *testing.T) {
	t.Parallel()
	const n = 450 // five chunks, flagged every 100 messages
	h, mb, sent := relayedBacklog(t, n)
	o := pollOptions(nil)
	mailin.SetMoveBatch(&o, 100)
	h.start(mb, o)
	h.waitTickets(n, 60*time.Second)
	h.waitAllSeen("Processed", n)
	h.assertExactlyOnce(n)
	var logins, moves int
	for line := range strings.Lines(sent.String()) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && (strings.EqualFold(f[1], "LOGIN") || strings.EqualFold(f[1], "AUTHENTICATE")):
			logins++
		case len(f) >= 3 && strings.EqualFold(f[1], "UID") && strings.EqualFold(f[2], "MOVE"):
			moves++
		}
	}
	if logins < 2 || moves < 2 {
		t.Errorf("%d logins and %d UID MOVE commands, want a second connection and a move per batch; commands:\n%s",
			logins, moves, commandNames(sent.String()))
	}
}
