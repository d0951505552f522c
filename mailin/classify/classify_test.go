package classify

import (
	"net/mail"
	"net/textproto"
	"strings"
	"testing"

	"github.com/deskd/deskd/mailin/parse"
)

// msg builds a parse.Message from header name/value pairs, filling the fields parse.Parse
// derives from them (Subject, From, To, MessageID, InReplyTo, References, ContentType).
func msg(text string, hdr ...string) *parse.Message {
	m := &parse.Message{Header: mail.Header{}, Text: text, ContentType: "text/plain"}
	for i := 0; i+1 < len(hdr); i += 2 {
		k := textproto.CanonicalMIMEHeaderKey(hdr[i])
		m.Header[k] = append(m.Header[k], hdr[i+1])
	}
	m.Subject = m.Header.Get("Subject")
	if a, err := mail.ParseAddress(m.Header.Get("From")); err == nil {
		m.From = a
	}
	if as, err := m.Header.AddressList("To"); err == nil {
		m.To = as
	}
	m.MessageID = msgID(m.Header.Get("Message-Id"))
	for _, f := range strings.Fields(m.Header.Get("In-Reply-To")) {
		m.InReplyTo = append(m.InReplyTo, strings.Trim(f, "<>"))
	}
	for _, f := range strings.Fields(m.Header.Get("References")) {
		m.References = append(m.References, strings.Trim(f, "<>"))
	}
	return m
}

// report turns m into a multipart/report of the given report-type with the given parts.
func report(m *parse.Message, reportType string, parts ...parse.Attachment) *parse.Message {
	m.ContentType = "multipart/report"
	m.ContentTypeParams = map[string]string{"report-type": reportType}
	m.Attachments = append(m.Attachments, parts...)
	return m
}

func part(contentType, data string) parse.Attachment {
	return parse.Attachment{ContentType: contentType, Data: []byte(data), Size: int64(len(data))}
}

var opts = Options{DeskAddresses: []string{"support@desk.example"}, DeskDomain: "mail.desk.example"}

const returnedHeaders = "From: support@desk.example\nTo: gone@example.org\nSubject: [SD-1] Printer\nMessage-ID: <sd-1.abc@mail.desk.example>\n"

func TestClassify(t *testing.T) {
	daemon := []string{"From", "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>", "To", "support@desk.example"}
	human := []string{"From", "Ana <ana@example.com>", "To", "support@desk.example"}
	with := func(base []string, more ...string) []string { return append(append([]string(nil), base...), more...) }

	tests := []struct {
		name   string
		m      *parse.Message
		o      Options
		class  Class
		reason string // substring of Result.Reason
	}{
		// loop
		{"own loop header", msg("hi", with(human, "X-Deskd-Loop", "mail.desk.example")...), opts, ClassLoop, "X-Deskd-Loop"},
		{"empty loop header", msg("hi", with(human, "X-Deskd-Loop", "")...), opts, ClassLoop, "X-Deskd-Loop"},
		{"another desk's loop header", msg("hi", with(human, "X-Deskd-Loop", "vendor.example")...), opts, ClassNormal, ""},
		{"any loop header without DeskDomain", msg("hi", with(human, "X-Deskd-Loop", "vendor.example")...), Options{}, ClassLoop, "X-Deskd-Loop"},
		{"OwnMessageID hook", msg("hi", with(human, "Message-ID", "<t.abc.1@example.com>")...),
			Options{DeskDomain: "example.com", OwnMessageID: func(id string) bool { return strings.HasPrefix(id, "t.abc.") }}, ClassLoop, "Message-ID"},
		{"OwnMessageID hook replaces the domain rule", msg("hi", with(human, "Message-ID", "<0a1b@example.com>")...),
			Options{DeskDomain: "example.com", OwnMessageID: func(id string) bool { return strings.HasPrefix(id, "t.abc.") }}, ClassNormal, ""},
		{"custom loop header", msg("hi", with(human, "X-Our-Loop", "desk")...), Options{LoopHeader: "x-our-loop"}, ClassLoop, "X-Our-Loop"},
		{"own Message-ID domain", msg("hi", with(human, "Message-ID", "<t1.xyz@MAIL.desk.example>")...), opts, ClassLoop, "Message-ID"},
		{"reply to our Message-ID is not a loop", msg("thanks", with(human, "Message-ID", "<a1@example.com>",
			"In-Reply-To", "<t1.xyz@mail.desk.example>", "References", "<t1.xyz@mail.desk.example>")...), opts, ClassNormal, ""},
		{"Message-ID rule off without DeskDomain", msg("hi", with(human, "Message-ID", "<t1@mail.desk.example>")...), Options{}, ClassNormal, ""},
		{"From a desk address", msg("hi", "From", "Desk <Support@Desk.Example>"), opts, ClassLoop, "desk address"},
		{"loop beats bounce", report(msg("", with(daemon, "X-Deskd-Loop", "mail.desk.example")...), "delivery-status",
			part("message/delivery-status", "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n")), opts, ClassLoop, ""},

		// RFC 3464 reports
		{"DSN failed", report(msg("The mail system", daemon...), "delivery-status",
			part("message/delivery-status", "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; gone@example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\n"),
			part("text/rfc822-headers", returnedHeaders)), opts, ClassBounce, "action=failed status=5.1.1"},
		{"DSN delayed is a report", report(msg("warning only", daemon...), "delivery-status",
			part("message/delivery-status", "Final-Recipient: rfc822; slow@example.org\nAction: delayed\nStatus: 4.4.1\n")), opts, ClassReport, "action=delayed"},
		{"DSN delivered is a report", report(msg("", daemon...), "delivery-status",
			part("message/delivery-status", "Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n")), opts, ClassReport, "action=delivered"},
		{"DSN relayed and expanded are reports", report(msg("", daemon...), "delivery-status",
			part("message/delivery-status", "Final-Recipient: rfc822; a@example.org\nAction: relayed\n\nFinal-Recipient: rfc822; b@example.org\nAction: expanded\n")), opts, ClassReport, "action=relayed"},
		{"global DSN (RFC 6533)", report(msg("", daemon...), "global-delivery-status",
			part("message/global-delivery-status", "Final-Recipient: utf-8; josé@example.org\nAction: failed\nStatus: 5.1.1\n")), opts, ClassBounce, "failed"},
		{"DSN without recipients is a report", report(msg("", "From", "someone@example.org"), "delivery-status",
			part("message/delivery-status", "Reporting-MTA: dns; mx.example.org\n")), opts, ClassReport, "without recipients"},
		{"DSN without recipients falls back to the text", report(msg("Delivery to the following recipient failed permanently:\n\n  gone@example.org\n", with(daemon, "Subject", "Delivery Status Notification (Failure)")...), "delivery-status",
			part("message/delivery-status", "Reporting-MTA: dns; mx.example.org\n")), opts, ClassBounce, "non-standard bounce"},
		{"bounce beats Auto-Submitted", report(msg("", with(daemon, "Auto-Submitted", "auto-replied")...), "delivery-status",
			part("message/delivery-status", "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n")), opts, ClassBounce, ""},
		{"feedback report (RFC 5965)", report(msg("This is an abuse report", "From", "fbl@isp.example"), "feedback-report",
			part("message/feedback-report", "Feedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\nVersion: 1\n")), opts, ClassReport, "feedback-type=abuse"},

		// non-standard bounces
		{"Exim X-Failed-Recipients", msg("This message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  gone@example.org\n    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\n    host mx.example.org [192.0.2.1]: 550 5.1.1 <gone@example.org>... User unknown\n",
			with(daemon, "X-Failed-Recipients", "gone@example.org", "Subject", "Mail delivery failed: returning message to sender")...), opts, ClassBounce, "X-Failed-Recipients"},
		{"qmail", msg("Hi. This is the qmail-send program at mx.example.org.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<gone@example.org>:\n192.0.2.1 does not like recipient.\nRemote host said: 550 5.1.1 User unknown\nGiving up on 192.0.2.1.\n\n--- Below this line is a copy of the message.\n\n"+returnedHeaders+"\nbody\n",
			with(daemon, "Subject", "failure notice")...), opts, ClassBounce, "status=5.1.1"},
		{"Exchange NDR header", msg("Your message did not reach some or all of the intended recipients.", with(human, "X-MS-Exchange-Message-Is-Ndr", "")...), opts, ClassBounce, "X-MS-Exchange-Message-Is-Ndr"},
		{"Gmail delay warning is a soft bounce", msg("THIS IS A WARNING MESSAGE ONLY.\n\nDelivery to the following recipient has been delayed:\n\n     slow@example.org\n\nMessage will be retried for 2 more day(s)\n",
			with(daemon, "Subject", "Delivery Status Notification (Delay)")...), opts, ClassBounce, "delay warning (soft bounce)"},
		{"Postfix delay warning is a soft bounce", msg("# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\nThis is the mail system at host mx.example.org.\n\nYour message could not be delivered for more than 4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n<slow@example.org>: connect to mx.example.org: Connection timed out\n",
			with(daemon, "Subject", "Delayed Mail (still being retried)")...), opts, ClassBounce, "delay warning (soft bounce)"},
		{"subject and text without daemon sender", msg("Your message could not be delivered to gone@example.org: 550 user unknown",
			"From", "System Administrator <admin@example.org>", "Subject", "Undeliverable: hello"), opts, ClassBounce, "subject"},
		{"user forwarding an NDR is a person", msg("Hi, I keep getting this, can you help?\n\n-----Original Message-----\nYour message could not be delivered to the following recipients: gone@example.org",
			with(human, "Subject", "FW: Undeliverable: quarterly report")...), opts, ClassNormal, ""},
		{"postmaster writing as a person", msg("Hello, our printer on floor 2 is offline again.",
			"From", "postmaster@example.org", "Subject", "Printer offline"), opts, ClassNormal, ""},
		{"bounce subject without bounce text", msg("Can you tell me why my mails end up as undeliverable? Thanks",
			with(human, "Subject", "Returned mail: why?")...), opts, ClassNormal, ""},

		// MDN
		{"RFC 8098 MDN", report(msg("Your message was displayed.", "From", "bob@example.org"), "disposition-notification",
			part("message/disposition-notification", "Reporting-UA: mua.example.org\nFinal-Recipient: rfc822; bob@example.org\nOriginal-Message-ID: <sd-1@mail.desk.example>\nDisposition: manual-action/MDN-sent-manually; displayed\n")),
			opts, ClassMDN, "displayed"},
		{"MDN part without report-type", func() *parse.Message {
			m := msg("", "From", "bob@example.org")
			m.ContentType = "multipart/mixed"
			m.Attachments = []parse.Attachment{part("message/disposition-notification", "Disposition: automatic-action/MDN-sent-automatically; deleted\n")}
			return m
		}(), opts, ClassMDN, "deleted"},
		{"MDN beats Auto-Submitted", report(msg("", "From", "bob@example.org", "Auto-Submitted", "auto-replied"), "disposition-notification"), opts, ClassMDN, ""},
		{"Outlook read receipt", msg("Your message\n\n  To: Bob\n  Subject: [SD-1] Printer\n\nwas read on 24.11.2026 10:12.", "From", "bob@example.org", "Subject", "Read: [SD-1] Printer"), opts, ClassMDN, "read receipt"},
		{"German read receipt", msg("Ihre Nachricht wurde am 24.11.2026 um 10:12 gelesen.", "From", "bob@example.org", "Subject", "Gelesen: [SD-1] Drucker"), opts, ClassMDN, "read receipt"},
		{"Read: subject from a person", msg("Please read chapter 3 of the VPN manual and tell me what I do wrong.", "From", "bob@example.org", "Subject", "Read: VPN manual"), opts, ClassNormal, ""},

		// auto-replies
		{"Auto-Submitted auto-replied", msg("I am away", with(human, "Auto-Submitted", "auto-replied")...), opts, ClassAutoreply, "Auto-Submitted: auto-replied"},
		{"Auto-Submitted with comment", msg("", with(human, "Auto-Submitted", "auto-generated (warning-timeout)")...), opts, ClassAutoreply, "Auto-Submitted: auto-generated"},
		{"Auto-Submitted no", msg("hi", with(human, "Auto-Submitted", "No")...), opts, ClassNormal, ""},
		{"X-Autoreply", msg("", with(human, "X-Autoreply", "yes")...), opts, ClassAutoreply, "X-Autoreply"},
		{"X-Autorespond", msg("", with(human, "X-Autorespond", "Away")...), opts, ClassAutoreply, "X-Autorespond"},
		{"X-Autogenerated: Reply", msg("", with(human, "X-Autogenerated", "Reply")...), opts, ClassAutoreply, "X-Autogenerated"},
		{"X-Autogenerated other value", msg("hi", with(human, "X-Autogenerated", "Forward")...), opts, ClassNormal, ""},
		{"Precedence auto_reply", msg("", with(human, "Precedence", "auto_reply")...), opts, ClassAutoreply, "auto_reply"},
		{"Precedence bulk", msg("", with(human, "Precedence", "bulk")...), opts, ClassAutoreply, "bulk"},
		{"Precedence junk", msg("", with(human, "Precedence", "junk")...), opts, ClassAutoreply, "junk"},
		{"null Return-Path", msg("", with(human, "Return-Path", "<>")...), opts, ClassAutoreply, "null Return-Path"},
		{"Out of office with Exchange rules loop", msg("I am out", with(human, "Subject", "Out of Office: [SD-7] VPN", "X-MS-Exchange-Inbox-Rules-Loop", "ana@example.com")...), opts, ClassAutoreply, "absence subject"},
		{"Out of office with X-Auto-Response-Suppress", msg("I am out", with(human, "Subject", "Abwesend", "X-Auto-Response-Suppress", "All")...), opts, ClassAutoreply, "absence subject"},
		{"Out of office question from a person", msg("My out of office message does not switch off.", with(human, "Subject", "Out of office: not working")...), opts, ClassNormal, ""},
		{"auto-reply subject in a reply chain", msg("see below", with(human, "Subject", "Re: Automatic reply: [SD-7] VPN")...), opts, ClassNormal, ""},
		{"auto-reply beats list", msg("", with(human, "Auto-Submitted", "auto-generated", "List-Id", "<x.example.org>")...), opts, ClassAutoreply, ""},

		// lists
		{"List-Id", msg("", with(human, "List-Id", "Users <users.lists.example.org>")...), opts, ClassList, "List-Id"},
		{"List-Post", msg("", with(human, "List-Post", "<mailto:users@lists.example.org>")...), opts, ClassList, "List-Post"},
		{"List-Unsubscribe newsletter", msg("", with(human, "List-Unsubscribe", "<https://news.example.org/u/1>")...), opts, ClassList, "List-Unsubscribe"},
		{"Precedence list", msg("", with(human, "Precedence", "list")...), opts, ClassList, "Precedence: list"},
		{"Precedence bulk with List-Id is a list", msg("", with(human, "Precedence", "bulk", "List-Id", "<ubuntu-bugs.lists.ubuntu.com>")...), opts, ClassList, "List-Id"},
		{"X-BeenThere", msg("", with(human, "X-BeenThere", "users@lists.example.org")...), opts, ClassList, "X-BeenThere"},

		// normal
		{"plain person", msg("My laptop does not boot.", with(human, "Subject", "Laptop")...), opts, ClassNormal, ""},
		{"empty message", &parse.Message{}, opts, ClassNormal, ""},
		{"nil message", nil, opts, ClassNormal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.m, tt.o)
			if got.Class != tt.class {
				t.Fatalf("class %s (%s), want %s", got.Class, got.Reason, tt.class)
			}
			if !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("reason %q does not mention %q", got.Reason, tt.reason)
			}
			if got.Reason == "" {
				t.Errorf("empty reason")
			}
		})
	}
}

// TestAutoreplySubjects checks the multilingual auto-reply subjects that are enough alone.
func TestAutoreplySubjects(t *testing.T) {
	for _, s := range []string{
		"Automatic reply: [SD-1] VPN", "Auto reply: x", "AutoReply: x", "Auto-Reply: x", "Auto Response: x",
		"Out of Office AutoReply: x", "Automatische Antwort: x", "Abwesenheitsnotiz: x", "Réponse automatique : x",
		"Respuesta automática: x", "Risposta automatica: x", "Automatisch antwoord: x", "Autosvar: x",
		"Automatiskt svar: x", "Automaattinen vastaus: x", "Automatická odpověď: x", "Odpowiedź automatyczna: x",
		"Resposta automática: x", "Automatikus válasz: x", "Otomatik yanıt: x", "Αυτόματη απάντηση: x",
		"Автоответ: x", "Автоматический ответ: x", "自动回复: x", "自動回覆：x", "自動応答: x", "자동 회신: x",
		"Automatic reply",
	} {
		if got := Classify(msg("I am away.", "From", "ana@example.com", "Subject", s), opts); got.Class != ClassAutoreply {
			t.Errorf("subject %q: class %s (%s), want autoreply", s, got.Class, got.Reason)
		}
	}
	for _, s := range []string{"Out of Office", "Absence du bureau", "Afwezig", "Frånvaro", "Fuori sede", "Poza biurem", "Ausente"} {
		m := msg("I am away.", "From", "ana@example.com", "Subject", s, "X-Auto-Response-Suppress", "All")
		if got := Classify(m, opts); got.Class != ClassAutoreply || !strings.Contains(got.Reason, "absence subject") {
			t.Errorf("subject %q with X-Auto-Response-Suppress: class %s (%s), want autoreply by absence subject", s, got.Class, got.Reason)
		}
		m = msg("I am away.", "From", "ana@example.com", "Subject", s)
		if got := Classify(m, opts); got.Class != ClassNormal {
			t.Errorf("subject %q alone: class %s (%s), want normal", s, got.Class, got.Reason)
		}
	}
}
