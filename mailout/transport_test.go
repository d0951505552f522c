package mailout

import (
	"bufio"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskd/deskd/internal/config"
)

// scriptedSMTP is an SMTP server that answers from a script and records what the client sent. With
// pipelining it offers PIPELINING and withholds every reply to MAIL, RCPT and DATA until it has read
// the DATA command: a client that waited for a reply before sending the next command would stall
// until its timeout.
type scriptedSMTP struct {
	script
	addr string

	mu  sync.Mutex
	log scriptLog
}

// script is how a scriptedSMTP behaves.
type script struct {
	pipelining bool
	replies    map[string]string // reply line to a command containing the key; default 250 (354 to DATA)
	hangUp     bool              // close the connection after each message, without a word
}

// scriptLog is what a scriptedSMTP saw.
type scriptLog struct {
	commands  []string // every command line received, in order
	bodies    []string // messages received (up to the final ".")
	abandoned int      // connections closed while the server was reading a message
	conns     int      // connections accepted
	eager     int      // commands sent before the reply to the previous one, PIPELINING not offered
}

func startScriptedSMTP(t *testing.T, sc script) *scriptedSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedSMTP{script: sc, addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.log.conns++
			s.mu.Unlock()
			go s.serve(conn)
		}
	}()
	return s
}

func (s *scriptedSMTP) answer(cmd string) string {
	for key, r := range s.replies {
		if strings.Contains(cmd, key) {
			return r
		}
	}
	if strings.HasPrefix(cmd, "DATA") {
		return "354 go ahead"
	}
	return "250 ok"
}

func (s *scriptedSMTP) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	say := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		w.Flush()
	}
	say("220 scripted ESMTP")
	var held []string // commands of a pipelined group, answered together
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(cmd, " ", 2)[0])
		if verb != "EHLO" && verb != "HELO" {
			s.mu.Lock()
			s.log.commands = append(s.log.commands, cmd)
			if !s.pipelining && r.Buffered() > 0 {
				s.log.eager++ // the client sent on without waiting for this command's reply
			}
			s.mu.Unlock()
		}
		switch {
		case verb == "EHLO":
			if s.pipelining {
				say("250-scripted", "250-PIPELINING", "250 8BITMIME")
			} else {
				say("250-scripted", "250 8BITMIME")
			}
			continue
		case verb == "QUIT":
			say("221 bye")
			return
		case s.pipelining && (strings.HasPrefix(verb, "MAIL") || strings.HasPrefix(verb, "RCPT")):
			held = append(held, cmd)
			continue
		}
		replies := make([]string, 0, len(held)+1)
		for _, h := range held {
			replies = append(replies, s.answer(h))
		}
		held = held[:0]
		last := s.answer(cmd)
		say(append(replies, last)...)
		if verb == "DATA" && strings.HasPrefix(last, "354") {
			var body strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					s.mu.Lock()
					s.log.abandoned++
					s.mu.Unlock()
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			s.mu.Lock()
			s.log.bodies = append(s.log.bodies, body.String())
			s.mu.Unlock()
			say(s.answer("."))
			if s.hangUp {
				return
			}
		}
	}
}

// seen returns a copy of what the server saw so far.
func (s *scriptedSMTP) seen() scriptLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	l.commands, l.bodies = slices.Clone(l.commands), slices.Clone(l.bodies)
	return l
}

// lastCommand is the last command the server received ("" before any).
func (l scriptLog) lastCommand() string {
	if len(l.commands) == 0 {
		return ""
	}
	return l.commands[len(l.commands)-1]
}

func scriptedTransport(t *testing.T, s *scriptedSMTP) *transport {
	t.Helper()
	cfg := smtpTo(t, s.addr, config.TLSNone)
	cfg.Timeout = 3 * time.Second
	tr, err := newTransport(cfg, "desk.example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.close)
	return tr
}

// sendVia sends one mail on tr (a pooled connection, handed back or closed after).
func sendVia(t *testing.T, tr *transport, from string, rcpts []string, raw []byte) delivery {
	t.Helper()
	d, attempted, err := tr.send(context.Background(), from, rcpts, raw, nil)
	if err != nil || !attempted {
		t.Fatalf("send: attempted %v, %v", attempted, err)
	}
	return d
}

// TestDeliverEnvelope runs mail transactions against a scripted server, with and without
// PIPELINING, and checks the commands on the wire (RFC 5321 paths in angle brackets, pipelined only
// when offered), what was delivered and how the outcome is filed.
func TestDeliverEnvelope(t *testing.T) {
	t.Parallel()
	raw := []byte("Subject: hi\r\n\r\nhello\r\n.leading dot\r\n")
	rcpts := []string{"ana@example.net", "bob@example.net"}
	refusals := []struct {
		name    string
		replies map[string]string
		check   func(t *testing.T, d delivery, s *scriptedSMTP)
	}{
		{"one recipient refused", map[string]string{"bob@": "550 5.1.1 no such user"}, func(t *testing.T, d delivery, s *scriptedSMTP) {
			if !d.accepted || len(d.refused) != 1 || d.refused[0].email != "bob@example.net" || !mailboxGone(d.refused[0].err) {
				t.Fatalf("delivery %+v, want accepted with bob refused (5.1.1)", d)
			}
			if l := s.seen(); len(l.bodies) != 1 {
				t.Errorf("%d messages delivered, want 1 (to ana)", len(l.bodies))
			}
		}},
		{"every recipient refused", map[string]string{"RCPT": "550 5.1.1 no such user", "DATA": "554 5.5.1 no valid recipients"},
			func(t *testing.T, d delivery, s *scriptedSMTP) {
				if d.accepted || d.permanent == nil || len(d.refused) != 2 || d.broken {
					t.Fatalf("delivery %+v, want a permanent failure with both refused, connection kept", d)
				}
				if l := s.seen(); len(l.bodies) != 0 || l.lastCommand() != "RSET" {
					t.Errorf("commands %q, %d bodies; want no message and the transaction reset", l.commands, len(l.bodies))
				}
			}},
		// A pipelining server that accepted ana answers DATA with 354: the client must walk away
		// without sending the message (closing the connection), since the whole mail is retried.
		{"one recipient deferred", map[string]string{"bob@": "451 4.3.0 try later"}, func(t *testing.T, d delivery, s *scriptedSMTP) {
			if d.accepted || d.temporary == nil || !strings.Contains(d.temporary.Error(), "451") || d.broken != s.pipelining {
				t.Fatalf("delivery %+v, want a temporary failure carrying the 451, the connection closed if DATA was sent", d)
			}
			deadline := time.Now().Add(3 * time.Second)
			for l := s.seen(); s.pipelining && l.abandoned != 1 || !s.pipelining && l.lastCommand() != "RSET"; l = s.seen() {
				if len(l.bodies) != 0 || time.Now().After(deadline) {
					t.Fatalf("commands %q, abandoned %d, bodies %q: want the transaction abandoned", l.commands, l.abandoned, l.bodies)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}},
		{"sender refused", map[string]string{"MAIL": "451 4.7.1 greylisted", "RCPT": "503 5.5.1 MAIL first", "DATA": "503 5.5.1 MAIL first"},
			func(t *testing.T, d delivery, _ *scriptedSMTP) {
				if d.accepted || d.temporary == nil || !strings.Contains(d.temporary.Error(), "greylisted") || d.broken || len(d.refused) != 0 {
					t.Fatalf("delivery %+v, want a temporary failure (the 451 to MAIL), no refused recipient, connection kept", d)
				}
			}},
	}
	for _, pipelining := range []bool{true, false} {
		name := "sequential"
		if pipelining {
			name = "pipelined"
		}
		t.Run(name+"/accepted", func(t *testing.T) {
			t.Parallel()
			s := startScriptedSMTP(t, script{pipelining: pipelining})
			tr := scriptedTransport(t, s)
			d := sendVia(t, tr, "desk+t1@example.org", rcpts, raw)
			if !d.accepted || d.temporary != nil || d.permanent != nil || d.broken {
				t.Fatalf("delivery %+v, want accepted on a reusable connection", d)
			}
			l := s.seen()
			if l.eager != 0 {
				t.Errorf("%d commands pipelined to a server that does not offer PIPELINING", l.eager)
			}
			want := []string{"MAIL FROM:<desk+t1@example.org> BODY=8BITMIME", "RCPT TO:<ana@example.net>", "RCPT TO:<bob@example.net>", "DATA"}
			if !slices.Equal(l.commands, want) {
				t.Errorf("commands %q, want %q", l.commands, want)
			}
			if len(l.bodies) != 1 || l.bodies[0] != "Subject: hi\r\n\r\nhello\r\n..leading dot\r\n" {
				t.Errorf("bodies %q, want the message dot-stuffed", l.bodies)
			}
			// The connection comes back for the next mail without an RSET (it was just used).
			if d := sendVia(t, tr, "desk@example.org", rcpts[:1], raw); !d.accepted {
				t.Fatalf("second mail on the reused connection: %+v", d)
			}
			if l := s.seen(); len(l.bodies) != 2 || slices.Contains(l.commands, "RSET") || l.conns != 1 {
				t.Errorf("after a second mail: commands %q, %d bodies, %d connections; want two messages on one, no RSET",
					l.commands, len(l.bodies), l.conns)
			}
		})
		for _, tc := range refusals {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s := startScriptedSMTP(t, script{pipelining: pipelining, replies: tc.replies})
				tc.check(t, sendVia(t, scriptedTransport(t, s), "desk@example.org", rcpts, raw), s)
			})
		}
	}
}

func TestDeliverRefusesMalformedEnvelope(t *testing.T) {
	t.Parallel()
	s := startScriptedSMTP(t, script{pipelining: true})
	tr := scriptedTransport(t, s)
	for _, rcpt := range []string{"a@example.net>\r\nRCPT TO:<b@example.net", "<a@example.net>"} {
		if d := sendVia(t, tr, "desk@example.org", []string{rcpt}, []byte("x\r\n")); d.permanent == nil || d.accepted {
			t.Errorf("recipient %q: %+v, want a permanent failure", rcpt, d)
		}
	}
	if l := s.seen(); len(l.commands) != 0 {
		t.Errorf("commands %q reached the server", l.commands)
	}
}

// TestSendRedialsAConnectionDroppedWhileIdle: the relay hangs up after every message (as one that
// restarted would have); the next mail on the pooled connection fails before any reply and goes out
// at once on a new connection, exactly once.
func TestSendRedialsAConnectionDroppedWhileIdle(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		s := startScriptedSMTP(t, script{pipelining: pipelining, hangUp: true})
		tr := scriptedTransport(t, s)
		for i := range 3 {
			if d := sendVia(t, tr, "desk@example.org", []string{"ana@example.net"}, []byte("x\r\n")); !d.accepted {
				t.Fatalf("pipelining %v, mail %d: %+v, want accepted", pipelining, i, d)
			}
			time.Sleep(20 * time.Millisecond) // let the hang-up arrive while the connection is idle
		}
		if l := s.seen(); len(l.bodies) != 3 || l.conns != 3 {
			t.Errorf("pipelining %v: %d messages on %d connections, want 3 on 3", pipelining, len(l.bodies), l.conns)
		}
	}
}
