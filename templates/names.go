package templates

// Template names. Each names a subject, a text/plain body and an HTML body, found as
// <name>.subject.tmpl, <name>.txt.tmpl and <name>.html.tmpl.
const (
	// Ack acknowledges a new ticket to its requester: the key, and how to reply.
	Ack = "ack"
	// AgentNew tells agents about a new ticket; View.Body is the requester's first message.
	AgentNew = "agent_new"
	// AgentReply tells agents that the requester replied; View.Body is the new message.
	AgentReply = "agent_reply"
	// Reply carries an agent's public reply (View.Body) to the requester, history quoted below.
	Reply = "reply"
	// StatusPending tells the requester that the desk waits for them; View.Body is the question.
	StatusPending = "status_pending"
	// StatusResolved tells the requester the ticket is resolved; View.Body is an optional note.
	StatusResolved = "status_resolved"
	// StatusClosed tells the requester the ticket is closed; View.Body is an optional note.
	StatusClosed = "status_closed"
	// StatusReopened tells the requester the ticket is open again; View.Body is an optional note.
	StatusReopened = "status_reopened"
	// Escalation tells agents or managers about an SLA warning or breach (View.Escalation).
	Escalation = "escalation"
	// Digest is a periodic report to managers (View.Digest).
	Digest = "digest"
	// DeadLetter tells agents that mail could not be delivered (View.Delivery).
	DeadLetter = "dead_letter"
	// LoopDetected tells agents that mail from an address looks like a loop (View.Loop). The
	// caller sends it once per episode.
	LoopDetected = "loop_detected"
	// CommandError answers an agent whose email command was invalid (View.Commands).
	CommandError = "command_error"
)

// names lists every template name in a fixed order.
var names = []string{
	Ack, AgentNew, AgentReply, Reply,
	StatusPending, StatusResolved, StatusClosed, StatusReopened,
	Escalation, Digest, DeadLetter, LoopDetected, CommandError,
}

// requesterFacing holds the names mailed to the requester; Render drops internal messages from
// their views whatever the templates say.
var requesterFacing = map[string]bool{
	Ack: true, Reply: true,
	StatusPending: true, StatusResolved: true, StatusClosed: true, StatusReopened: true,
}

// Names returns every template name, in a fixed order. The caller may modify the slice.
func Names() []string {
	return append([]string(nil), names...)
}

// ForRequester reports whether the named mail goes to the requester (rather than to agents or
// managers). Render never shows internal messages in such mail.
func ForRequester(name string) bool {
	return requesterFacing[name]
}

// Shared parts, looked up like the named ones: the text footer (rendered once, available as
// .Footer in text and HTML), the HTML layout (which calls {{template "content" .}}), and common
// definitions ({{define}} blocks) parsed into every text and every HTML body.
const (
	footerFile     = "footer.txt.tmpl"
	layoutFile     = "layout.html.tmpl"
	commonTextFile = "common.txt.tmpl"
	commonHTMLFile = "common.html.tmpl"
)

// Part suffixes of a named template.
const (
	subjectSuffix = ".subject.tmpl"
	textSuffix    = ".txt.tmpl"
	htmlSuffix    = ".html.tmpl"
)

// validFile reports whether base is a file name an override directory may hold.
func validFile(base string) bool {
	switch base {
	case footerFile, layoutFile, commonTextFile, commonHTMLFile:
		return true
	}
	for _, n := range names {
		switch base {
		case n + subjectSuffix, n + textSuffix, n + htmlSuffix:
			return true
		}
	}
	return false
}
