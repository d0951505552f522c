package main

import (
	"bufio"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is the bench's outbound relay: it accepts every message, keeps only when it arrived,
// its recipients and what it answers (In-Reply-To), and discards the bytes, so that the bench's
// own memory stays out of deskd's RSS figure.
type smtpSink struct {
	srv *smtp.Server
	ln  net.Listener
	wg  sync.WaitGroup

	mu    sync.Mutex
	got   []sunk
	bytes int64
}

// sunk is one accepted message.
type sunk struct {
	at        time.Time // when DATA completed
	to        []string
	inReplyTo string // without angle brackets
}

func startSMTPSink() (*smtpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &smtpSink{ln: ln}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink." + benchDomain
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 100
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln) //nolint:errcheck // ends with Close
	}()
	return s, nil
}

func (s *smtpSink) addr() string { return s.ln.Addr().String() }

func (s *smtpSink) close() {
	s.srv.Close() //nolint:errcheck // shutting down
	s.wg.Wait()
}

// count returns the number of messages accepted so far.
func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// since returns the messages accepted from index i on.
func (s *smtpSink) since(i int) []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.got[min(i, len(s.got)):]...)
}

type sinkBackend struct{ s *smtpSink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct {
	s  *smtpSink
	to []string
}

func (x *sinkSession) Mail(string, *smtp.MailOptions) error { x.to = nil; return nil }

func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, strings.ToLower(to))
	return nil
}

// Data reads the header for In-Reply-To and drains the rest.
func (x *sinkSession) Data(r io.Reader) error {
	cr := &countingReader{r: r}
	br := bufio.NewReader(cr)
	hdr, err := textproto.NewReader(br).ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return err
	}
	irt := strings.Trim(strings.TrimSpace(hdr.Get("In-Reply-To")), "<>")
	x.s.mu.Lock()
	x.s.got = append(x.s.got, sunk{at: time.Now(), to: x.to, inReplyTo: irt})
	x.s.bytes += cr.n
	x.s.mu.Unlock()
	return nil
}

func (x *sinkSession) Reset()        { x.to = nil }
func (x *sinkSession) Logout() error { return nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
