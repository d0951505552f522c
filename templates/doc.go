// Package templates renders deskd's outbound mail (acknowledgements, replies, status changes,
// agent notifications, escalations, digests) from one typed View into a sanitised subject, a
// text/plain body and an HTML body. It is pure: no database, no network, no clock (View.Now is
// the caller's injected time).
//
// # Files
//
// Every mail has a name (Ack, Reply, ...) and three parts: <name>.subject.tmpl (text/template;
// the output is folded to one line by SanitizeHeader), <name>.txt.tmpl (text/template) and
// <name>.html.tmpl (html/template, so every value is escaped for its context). Shared parts:
// footer.txt.tmpl is rendered first and given to the others as .Footer (text bodies end with
// "{{sigsep}}" and "{{.Footer}}"); layout.html.tmpl wraps every HTML body, shown as .Content;
// common.txt.tmpl and common.html.tmpl hold {{define}} blocks parsed into every text and every HTML
// template respectively.
//
// Built-in defaults are embedded in English ("en") and German ("de"). Options.Dir may override any
// file; for a queue and language each file is looked up most specific first:
//
//	DIR/<queue>/<lang>/<file> > DIR/<queue>/<file> > DIR/<lang>/<file> > DIR/<file>
//	> embedded <lang>/<file> > embedded en/<file>
//
// A directory directly under DIR serves as a queue directory when rendering for a queue of that
// name and as a language directory when rendering in a language of that name; keep queue names
// and language tags apart. Language directories are lower-case tags ("de", "pt-br").
//
// # Data
//
// Templates see the View's fields (.Ticket.Key, .Body, ...) plus .Subject (the rendered,
// sanitised subject; "" while rendering the subject), .Footer (the rendered footer text, "" while
// rendering the subject and the footer), .Lang (the language of the mail) and, in the layout
// only, .Content (the rendered HTML body).
//
// # Helpers
//
// Every template may call, in the language of the mail (English for languages deskd has no
// formats for):
//
//	date T, datetime T    format a time.Time or *time.Time (nil and zero give "")
//	relative NOW T        "in 2 h 5 min", "15 min ago": {{relative .Now .Ticket.ResponseDue}}
//	span D                a time.Duration in at most two units: "2 h 5 min"
//	label KIND VALUE      a translated ticket value: {{label "status" .Ticket.Status}};
//	                      KIND is status, priority, kind or clock
//	person P              "Name <email>", or whichever of the two is set
//	quote S               every line prefixed with "> " (">" for empty lines)
//	indent N S            every non-empty line prefixed with N spaces
//	truncate N S          at most N runes, "…" appended when cut
//	trim S                surrounding white space removed
//	oneline S             S as one clean line (SanitizeHeader), for untrusted subjects in bodies
//	public MESSAGES       the messages not marked Internal
//	take N MESSAGES       the first N messages
//	sigsep                the signature separator "-- " (RFC 3676 §4.3)
//	replyMarker           the reply marker line (ReplyMarker)
//
// HTML templates may also call paras S, which renders plain text as escaped HTML paragraphs.
//
// Rendered text is tidied: trailing blanks go (except in "-- "), runs of blank lines collapse to
// one, and the text ends in one newline; so templates need not fight white space.
package templates
