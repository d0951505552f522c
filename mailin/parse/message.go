// Package parse turns raw RFC 5322 bytes into a Message: decoded headers, text, HTML rendered as text,
// attachments, and the visible (new) part of a reply. It is pure: no database, no network, no clock,
// and it never panics on hostile input; broken MIME yields best-effort text plus Warnings.
package parse

import (
	"net/mail"
	"time"
)

// Message is the parsed form of one inbound mail.
type Message struct {
	// Header holds every top-level header field, keys in canonical MIME form, values with RFC 2047
	// encoded words decoded to UTF-8 (best effort).
	Header mail.Header

	Subject    string
	From       *mail.Address // nil when absent or unparseable (a Warning says so)
	Sender     *mail.Address
	ReplyTo    []*mail.Address
	To         []*mail.Address
	Cc         []*mail.Address
	Date       time.Time // zero when absent or unparseable
	MessageID  string    // as written, without angle brackets
	InReplyTo  []string  // msg-ids without angle brackets, RFC 5322 §3.6.4
	References []string  // msg-ids without angle brackets, oldest first

	// ContentType is the top-level media type (lower-case), "text/plain" when missing (RFC 2045 §5.2).
	ContentType string
	// ContentTypeParams are the top-level Content-Type parameters (e.g. report-type for multipart/report).
	ContentTypeParams map[string]string

	// Text is the full body as UTF-8 plain text: the text/plain part, or the HTML part rendered as text
	// when there is no plain part. Line endings are normalised to \n.
	Text string
	// HTML is the text/html part decoded to UTF-8, "" when absent.
	HTML string
	// VisibleText is the new part of a reply: Text without quoted history, reply headers and signature.
	VisibleText string
	// Charset is the charset the main text part was decoded from (lower-case): the declared one, or
	// the one found in an HTML <meta> or detected when the declaration was missing or contradicted by
	// the content (a Warning says so); "" when nothing was declared and the text is plain ASCII.
	Charset string
	// DeclaredCharset is the charset parameter of the main text part as declared (lower-case), "" when
	// none was declared.
	DeclaredCharset string

	// Attachments are all non-body leaf parts in document order, including inline images and
	// machine-readable report parts (message/delivery-status, message/disposition-notification,
	// text/rfc822-headers, message/rfc822) so that classification can read them.
	Attachments []Attachment

	// Warnings describe what was broken and how it was repaired; empty for clean mail.
	Warnings []string
}

// Attachment is one non-body part of a message.
type Attachment struct {
	Filename    string // decoded (RFC 2047 / RFC 2231), "" when none was given
	ContentType string // lower-case media type
	ContentID   string // without angle brackets
	Inline      bool   // Content-Disposition: inline, or referenced as cid: from the HTML
	Size        int64  // decoded size in bytes
	Data        []byte // decoded content
}
