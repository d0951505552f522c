package mailout

import (
	"bufio"
	"context"
	"net"
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
	pipelining bool
	reply      func(cmd string) string // the reply line to a command; "" for the default

	mu        sync.Mutex
	commands  []string // every command line received, in order
	bodies    []string // messages received (up to the final ".")
	abandoned int      // connections closed while the server was reading a message
	conns     int      // connections accepted
	hangUp    bool     // close the connection after each message, without a word
	addr      string
}

func startScriptedSMTP(t *testing.T, pipelining bool, reply func(string) string) *scriptedSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedSMTP{pipelining: pipelining, reply: reply, addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			go s.serve(conn)
		}
	}()
	return s
}

func (s *scriptedSMTP) answer(cmd string) string {
	if s.reply != nil {
		if r := s.reply(cmd); r != "" {
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
			s.commands = append(s.commands, cmd)
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
					s.abandoned++
					s.mu.Unlock()
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			s.mu.Lock()
			s.bodies = append(s.bodies, body.String())
			s.mu.Unlock()
			say(s.answer("."))
			s.mu.Lock()
			hangUp := s.hangUp
			s.mu.Unlock()
			if hangUp {
				return
			}
		}
	}
}

func (s *scriptedSMTP) seen() (commands, bodies []string, abandoned int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...), append([]string(nil), s.bodies...), s.abandoned
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

// deliverOnce sends one mail from desk@example.org to s on a new transport.
func deliverOnce(t *testing.T, s *scriptedSMTP, rcpts []string, raw []byte) delivery {
	t.Helper()
	return sendVia(t, scriptedTransport(t, s), "desk@example.org", rcpts, raw)
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

// TestDeliverEnvelope runs one mail transaction per case against a scripted server, with and
// without PIPELINING, and checks the commands on the wire (RFC 5321 paths in angle brackets), what
// was delivered and how the outcome is filed.
func TestDeliverEnvelope(t *testing.T) {
	t.Parallel()
	raw := []byte("Subject: hi\r\n\r\nhello\r\n.leading dot\r\n")
	rcpts := []string{"ana@example.net", "bob@example.net"}
	for _, pipelining := range []bool{true, false} {
		name := "sequential"
		if pipelining {
			name = "pipelined"
		}
		t.Run(name+"/accepted", func(t *testing.T) {
			t.Parallel()
			s := startScriptedSMTP(t, pipelining, nil)
			tr := scriptedTransport(t, s)
			d := sendVia(t, tr, "desk+t1@example.org", rcpts, raw)
			if !d.accepted || d.temporary != nil || d.permanent != nil || d.broken {
				t.Fatalf("delivery %+v, want accepted on a reusable connection", d)
			}
			cmds, bodies, _ := s.seen()
			want := []string{"MAIL FROM:<desk+t1@example.org> BODY=8BITMIME", "RCPT TO:<ana@example.net>", "RCPT TO:<bob@example.net>", "DATA"}
			if strings.Join(cmds, "|") != strings.Join(want, "|") {
				t.Errorf("commands %q, want %q", cmds, want)
			}
			if len(bodies) != 1 || bodies[0] != "Subject: hi\r\n\r\nhello\r\n..leading dot\r\n" {
				t.Errorf("bodies %q, want the message dot-stuffed", bodies)
			}
			// The connection comes back for the next mail without an RSET (it was just used).
			if d := sendVia(t, tr, "desk@example.org", rcpts[:1], raw); !d.accepted {
				t.Fatalf("second mail on the reused connection: %+v", d)
			}
			if cmds, bodies, _ := s.seen(); len(bodies) != 2 || strings.Contains(strings.Join(cmds, "|"), "RSET") {
				t.Errorf("after a second mail: commands %q, %d bodies; want two messages and no RSET", cmds, len(bodies))
			}
		})
		t.Run(name+"/one recipient refused", func(t *testing.T) {
			t.Parallel()
			s := startScriptedSMTP(t, pipelining, func(cmd string) string {
				if strings.Contains(cmd, "bob@") {
					return "550 5.1.1 no such user"
				}
				return ""
			})
			d := deliverOnce(t, s, rcpts, raw)
			if !d.accepted || len(d.refused) != 1 || d.refused[0].email != "bob@example.net" || !mailboxGone(d.refused[0].err) {
				t.Fatalf("delivery %+v, want accepted with bob refused (5.1.1)", d)
			}
			if _, bodies, _ := s.seen(); len(bodies) != 1 {
				t.Errorf("%d messages delivered, want 1 (to ana)", len(bodies))
			}
		})
		t.Run(name+"/every recipient refused", func(t *testing.T) {
			t.Parallel()
			s := startScriptedSMTP(t, pipelining, func(cmd string) string {
				switch {
				case strings.HasPrefix(cmd, "RCPT"):
					return "550 5.1.1 no such user"
				case cmd == "DATA":
					return "554 5.5.1 no valid recipients"
				}
				return ""
			})
			d := deliverOnce(t, s, rcpts, raw)
			if d.accepted || d.permanent == nil || len(d.refused) != 2 || d.broken {
				t.Fatalf("delivery %+v, want a permanent failure with both refused, connection kept", d)
			}
			cmds, bodies, _ := s.seen()
			if len(bodies) != 0 || cmds[len(cmds)-1] != "RSET" {
				t.Errorf("commands %q, %d bodies; want no message and the transaction reset", cmds, len(bodies))
			}
		})
		t.Run(name+"/one recipient deferred", func(t *testing.T) {
			t.Parallel()
			// A pipelining server that accepted ana answers DATA with 354: the client must walk away
			// without sending the message, since the whole mail is retried later.
			s := startScriptedSMTP(t, pipelining, func(cmd string) string {
				if strings.Contains(cmd, "bob@") {
					return "451 4.3.0 try later"
				}
				return ""
			})
			d := deliverOnce(t, s, rcpts, raw)
			if d.accepted || d.temporary == nil || !strings.Contains(d.temporary.Error(), "451") {
				t.Fatalf("delivery %+v, want a temporary failure carrying the 451", d)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				cmds, bodies, abandoned := s.seen()
				if len(bodies) != 0 {
					t.Fatalf("a message was delivered: %q", bodies)
				}
				if pipelining && abandoned == 1 && d.broken {
					break // closed in the middle of DATA, which aborts the transaction
				}
				if !pipelining && cmds[len(cmds)-1] == "RSET" && !d.broken {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("commands %q, abandoned %d, broken %v: want the transaction abandoned", cmds, abandoned, d.broken)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		t.Run(name+"/sender refused", func(t *testing.T) {
			t.Parallel()
			s := startScriptedSMTP(t, pipelining, func(cmd string) string {
				switch {
				case strings.HasPrefix(cmd, "MAIL"):
					return "451 4.7.1 greylisted"
				case strings.HasPrefix(cmd, "RCPT"), cmd == "DATA":
					return "503 5.5.1 MAIL first"
				}
				return ""
			})
			d := deliverOnce(t, s, rcpts, raw)
			if d.accepted || d.temporary == nil || !strings.Contains(d.temporary.Error(), "greylisted") || d.broken || len(d.refused) != 0 {
				t.Fatalf("delivery %+v, want a temporary failure (the 451 to MAIL), no refused recipient, connection kept", d)
			}
		})
	}
}

func TestDeliverRefusesMalformedEnvelope(t *testing.T) {
	t.Parallel()
	s := startScriptedSMTP(t, true, nil)
	tr := scriptedTransport(t, s)
	for _, rcpt := range []string{"a@example.net>\r\nRCPT TO:<b@example.net", "<a@example.net>"} {
		if d := sendVia(t, tr, "desk@example.org", []string{rcpt}, []byte("x\r\n")); d.permanent == nil || d.accepted {
			t.Errorf("recipient %q: %+v, want a permanent failure", rcpt, d)
		}
	}
	if cmds, _, _ := s.seen(); len(cmds) != 0 {
		t.Errorf("commands %q reached the server", cmds)
	}
}

// TestSendRedialsAConnectionDroppedWhileIdle: the relay hangs up after every message (as one that
// restarted would have); the next mail on the pooled connection fails before any reply and goes out
// at once on a new connection, exactly once.
func TestSendRedialsAConnectionDroppedWhileIdle(t *testing.T) {
	t.Parallel()
	for _, pipelining := range []bool{true, false} {
		s := startScriptedSMTP(t, pipelining, nil)
		s.mu.Lock()
		s.hangUp = true
		s.mu.Unlock()
		tr := scriptedTransport(t, s)
		for i := range 3 {
			if d := sendVia(t, tr, "desk@example.org", []string{"ana@example.net"}, []byte("x\r\n")); !d.accepted {
				t.Fatalf("pipelining %v, mail %d: %+v, want accepted", pipelining, i, d)
			}
			time.Sleep(20 * time.Millisecond) // let the hang-up arrive while the connection is idle
		}
		_, bodies, _ := s.seen()
		s.mu.Lock()
		conns := s.conns
		s.mu.Unlock()
		if len(bodies) != 3 || conns != 3 {
			t.Errorf("pipelining %v: %d messages on %d connections, want 3 on 3", pipelining, len(bodies), conns)
		}
	}
}
