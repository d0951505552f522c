// Package token signs ticket IDs so that replies to deskd's mail can be threaded, and email commands
// authorised, without trusting anything an outsider can guess or forge.
//
// A token is the ticket ID in base 36, a hyphen, and the first 80 bits of
// HMAC-SHA256(secret, "deskd/ticket/v1:" + decimal ID) in lowercase base 32 (RFC 4648 §6 alphabet,
// no padding), e.g. "sa-mfrggzdfmztwq2lk". Tokens use only [0-9a-z-], so they survive MTAs that
// case-fold addresses, and contain no dot, so they survive providers that ignore dots in local parts.
// Verification is case-insensitive.
//
// The package is pure: no clock, no I/O. Tokens do not expire; rotating the secret invalidates them all,
// after which replies still thread by stored Message-ID or subject key.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MinSecretLen is the shortest secret New accepts, in bytes.
const MinSecretLen = 16

// macLen is the number of HMAC bytes kept in a token: 80 bits, 16 base-32 characters.
const macLen = 10

// macDomain separates this use of the secret from any other HMAC keyed with it.
const macDomain = "deskd/ticket/v1:"

// messageIDPrefix starts the id-left of every Message-ID that MessageID makes.
const messageIDPrefix = "t."

// addressTag starts the sub-address (the part after "+") that ReplyAddress adds.
const addressTag = "+t-"

var (
	// ErrInvalidToken reports a token that has the shape of one of ours but fails verification:
	// tampered, signed with another secret, or a non-positive ticket ID. Callers should treat it as
	// a possible forgery (log it, ignore the token), not as an absent token.
	ErrInvalidToken = errors.New("token: invalid token")

	// ErrNoToken reports a Message-ID or address that carries no token of ours at all, for example a
	// Message-ID made by another host or an address without our sub-address tag.
	ErrNoToken = errors.New("token: no token")
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Signer makes and verifies ticket tokens. It is safe for concurrent use.
type Signer struct {
	secret []byte
	domain string
}

// New returns a Signer keyed with secret (at least MinSecretLen bytes; it is copied) whose Message-IDs
// use domain as id-right. The domain is stored lower-cased and must be a non-empty dot-atom without
// "@", angle brackets or whitespace (RFC 5322 §3.6.4).
func New(secret []byte, domain string) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("create signer: secret is %d bytes, need at least %d", len(secret), MinSecretLen)
	}
	domain = strings.ToLower(strings.TrimSpace(domain))
	if !validDomain(domain) {
		return nil, fmt.Errorf("create signer: invalid Message-ID domain %q", domain)
	}
	return &Signer{secret: append([]byte(nil), secret...), domain: domain}, nil
}

// Domain returns the lower-cased id-right used in Message-IDs.
func (s *Signer) Domain() string { return s.domain }

// Token returns the token for ticketID. Ticket IDs are positive; the token of a non-positive ID is
// one Verify rejects.
func (s *Signer) Token(ticketID int64) string {
	return strconv.FormatUint(uint64(ticketID), 36) + "-" + s.mac(uint64(ticketID))
}

// Verify returns the ticket ID carried by tok, accepting any letter case. It returns ErrNoToken when
// tok is not shaped like a token at all and ErrInvalidToken when it is but the signature does not
// match or the ID is out of range.
func (s *Signer) Verify(tok string) (int64, error) {
	tok = strings.ToLower(tok)
	idPart, macPart, ok := strings.Cut(tok, "-")
	if !ok || idPart == "" || len(macPart) != b32.EncodedLen(macLen) || !isBase36(idPart) || !isBase32(macPart) {
		return 0, ErrNoToken
	}
	if len(idPart) > 1 && idPart[0] == '0' {
		return 0, ErrInvalidToken // one ID, one token: no leading zeros
	}
	id, err := strconv.ParseUint(idPart, 36, 64)
	if err != nil || id == 0 || id > math.MaxInt64 {
		return 0, ErrInvalidToken
	}
	if !hmac.Equal([]byte(s.mac(id)), []byte(macPart)) {
		return 0, ErrInvalidToken
	}
	return int64(id), nil
}

// MessageID returns the Message-ID for one outbound mail about ticketID, in the canonical stored form:
// "t.TOKEN.UNIQUE@domain", lower-case and WITHOUT angle brackets. The header writer adds the brackets
// (go-mail's SetMessageIDWithValue does), and mailin/thread.CanonicalID of the header value gives this
// string back, so it can be stored and compared as is.
//
// unique tells the caller's mails apart (an outbox row ID, say) and must be stable across retries of
// one mail so that a retry reuses the ID. It is lower-cased; characters other than [0-9a-z._-] become
// "-", runs of dots collapse and leading or trailing dots are dropped, so the result is always a valid
// RFC 5322 §3.6.4 msg-id. An empty unique gives "t.TOKEN@domain".
func (s *Signer) MessageID(ticketID int64, unique string) string {
	left := messageIDPrefix + s.Token(ticketID)
	if u := sanitizeUnique(unique); u != "" {
		left += "." + u
	}
	return left + "@" + s.domain
}

// TicketFromMessageID returns the ticket ID in a Message-ID made by MessageID. It accepts the value
// with or without angle brackets, surrounding whitespace and in any letter case. It returns ErrNoToken
// for a Message-ID of another form or another domain, and ErrInvalidToken when the form and domain
// are ours but the token does not verify.
func (s *Signer) TicketFromMessageID(id string) (int64, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	at := strings.LastIndexByte(id, '@')
	if at < 0 || id[at+1:] != s.domain {
		return 0, ErrNoToken
	}
	left, ok := strings.CutPrefix(id[:at], messageIDPrefix)
	if !ok {
		return 0, ErrNoToken
	}
	tok, _, _ := strings.Cut(left, ".")
	return s.Verify(tok)
}

// ReplyAddress returns base with the ticket's token added as a sub-address:
// "support@example.com" becomes "support+t-TOKEN@example.com". A base that already has a sub-address
// keeps it ("support+it@x" becomes "support+it+t-TOKEN@x"). A base without "@" is returned unchanged.
// The mail server must deliver plus-addresses to the base mailbox.
func (s *Signer) ReplyAddress(base string, ticketID int64) string {
	at := strings.LastIndexByte(base, '@')
	if at <= 0 {
		return base
	}
	return base[:at] + addressTag + s.Token(ticketID) + base[at:]
}

// TicketFromAddress returns the ticket ID in an address made by ReplyAddress. It accepts any letter
// case, surrounding whitespace and a display-name form ("Desk <support+t-…@example.com>"). The domain
// of the address is not checked: the signature alone proves the token is ours. It returns ErrNoToken
// when the address has no "+t-" sub-address and ErrInvalidToken when the token does not verify.
func (s *Signer) TicketFromAddress(addr string) (int64, error) {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if lt := strings.LastIndexByte(addr, '<'); lt >= 0 {
		addr = addr[lt+1:]
		if gt := strings.IndexByte(addr, '>'); gt >= 0 {
			addr = addr[:gt]
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return 0, ErrNoToken
	}
	local := addr[:at]
	i := strings.LastIndex(local, addressTag)
	if i < 0 {
		return 0, ErrNoToken
	}
	return s.Verify(local[i+len(addressTag):])
}

func (s *Signer) mac(id uint64) string {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(macDomain))
	h.Write([]byte(strconv.FormatUint(id, 10)))
	return b32.EncodeToString(h.Sum(nil)[:macLen])
}

func sanitizeUnique(u string) string {
	var b strings.Builder
	b.Grow(len(u))
	dot := true // suppresses leading dots and runs of dots
	for _, r := range strings.ToLower(u) {
		switch {
		case r == '.':
			if !dot {
				b.WriteByte('.')
			}
			dot = true
			continue
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		dot = false
	}
	return strings.TrimSuffix(b.String(), ".")
}

func validDomain(d string) bool {
	if d == "" || d[0] == '.' || d[len(d)-1] == '.' || strings.Contains(d, "..") {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("@<>()[]\\,;:\"", c) >= 0 {
			return false
		}
	}
	return true
}

func isBase36(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func isBase32(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
