package classify

import (
	"reflect"
	"testing"

	"github.com/deskd/deskd/mailin/parse"
)

func dsn(text, status string, parts ...parse.Attachment) *parse.Message {
	m := msg(text, "From", "MAILER-DAEMON@mx.example.org", "To", "support@desk.example", "Subject", "Undelivered Mail Returned to Sender")
	return report(m, "delivery-status", append([]parse.Attachment{part("message/delivery-status", status)}, parts...)...)
}

// TestBounceRecipients checks per-recipient details of delivery reports.
func TestBounceRecipients(t *testing.T) {
	tests := []struct {
		name  string
		m     *parse.Message
		class Class
		orig  string
		want  []BounceRecipient
	}{
		{
			name: "hard 5.1.1 with returned headers",
			m: dsn("", "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; Gone@Example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown\n",
				part("text/rfc822-headers", returnedHeaders)),
			class: ClassBounce, orig: "sd-1.abc@mail.desk.example",
			want: []BounceRecipient{{Address: "gone@example.org", Action: "failed", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown", Hard: true}},
		},
		{
			name:  "Original-Recipient is the address we sent to",
			m:     dsn("", "Final-Recipient: rfc822; local-alias@mx.example.org\nOriginal-Recipient: rfc822;ana@example.org\nAction: failed\nStatus: 5.1.1\n"),
			class: ClassBounce,
			want:  []BounceRecipient{{Address: "ana@example.org", Action: "failed", Status: "5.1.1", Hard: true}},
		},
		{
			name:  "full mailbox is soft even with 5.x.x",
			m:     dsn("", "Final-Recipient: rfc822; full@example.org\nAction: failed\nStatus: 5.2.2\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full\n"),
			class: ClassBounce,
			want: []BounceRecipient{{Address: "full@example.org", Action: "failed", Status: "5.2.2",
				Diagnostic: "smtp; 552 5.2.2 Mailbox full", Retryable: true}},
		},
		{
			name:  "generic 5.0.0 refined from the diagnostic",
			m:     dsn("", "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.0.0 (permanent failure)\nDiagnostic-Code: smtp; 5.1.0 - Unknown address error 550-'5.2.2 <a@example.org>... Mailbox Full'\n"),
			class: ClassBounce,
			want: []BounceRecipient{{Address: "a@example.org", Action: "failed", Status: "5.2.2",
				Diagnostic: "smtp; 5.1.0 - Unknown address error 550-'5.2.2 <a@example.org>... Mailbox Full'", Retryable: true}},
		},
		{
			name:  "an address that looks like a reason is not evidence",
			m:     dsn("", "Final-Recipient: rfc822; spam-filtered@example.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <spam-filtered@example.org> no such user\n"),
			class: ClassBounce,
			want: []BounceRecipient{{Address: "spam-filtered@example.org", Action: "failed", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 <spam-filtered@example.org> no such user", Hard: true}},
		},
		{
			name:  "policy rejection is not hard",
			m:     dsn("", "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.7.1\nDiagnostic-Code: smtp; 554 5.7.1 Message rejected as spam\n"),
			class: ClassBounce,
			want: []BounceRecipient{{Address: "a@example.org", Action: "failed", Status: "5.7.1",
				Diagnostic: "smtp; 554 5.7.1 Message rejected as spam", Retryable: true}},
		},
		{
			name:  "expired with 4.x.x is a failure but not hard",
			m:     dsn("", "Final-Recipient: rfc822; slow@example.org\nAction: failed\nStatus: 4.4.7\n"),
			class: ClassBounce,
			want:  []BounceRecipient{{Address: "slow@example.org", Action: "failed", Status: "4.4.7", Retryable: true}},
		},
		{
			name: "several recipients without blank lines, mixed actions",
			m: dsn("", "Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.2\nFinal-Recipient: rfc822; b@example.org\nAction: delayed\nStatus: 4.2.2\n"+
				"Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\n"),
			class: ClassBounce,
			want: []BounceRecipient{
				{Address: "a@example.org", Action: "failed", Status: "5.1.2", Hard: true},
				{Address: "b@example.org", Action: "delayed", Status: "4.2.2", Diagnostic: "smtp; 452 4.2.2 Mailbox full", Retryable: true},
			},
		},
		{
			name:  "folded diagnostic, status with comment, upper-case action",
			m:     dsn("", "Final-Recipient: RFC822; <a@example.org>\nAction: FAILED\nStatus: 5.1.1 (bad destination mailbox)\nDiagnostic-Code: smtp; 550 5.1.1 The email account that you tried\n    to reach does not exist\n"),
			class: ClassBounce,
			want: []BounceRecipient{{Address: "a@example.org", Action: "failed", Status: "5.1.1",
				Diagnostic: "smtp; 550 5.1.1 The email account that you tried to reach does not exist", Hard: true}},
		},
		{
			name:  "missing Action falls back to the status class",
			m:     dsn("", "Final-Recipient: rfc822; a@example.org\nStatus: 5.1.1\n"),
			class: ClassBounce,
			want:  []BounceRecipient{{Address: "a@example.org", Action: "failed", Status: "5.1.1", Hard: true}},
		},
		{
			name:  "delay report",
			m:     dsn("", "Final-Recipient: rfc822; slow@example.org\nAction: delayed\nStatus: 4.4.1\nDiagnostic-Code: X-Postfix; connect to mx.example.org: Connection timed out\n"),
			class: ClassReport,
			want: []BounceRecipient{{Address: "slow@example.org", Action: "delayed", Status: "4.4.1",
				Diagnostic: "X-Postfix; connect to mx.example.org: Connection timed out", Retryable: true}},
		},
		{
			name:  "Exim leaves Diagnostic-Code out and explains in the text",
			m:     dsn("The following address(es) failed:\n\n  gone@example.org\n    Unknown user\n", "Final-Recipient: rfc822;gone@example.org\nAction: failed\nStatus: 5.0.0\n"),
			class: ClassBounce,
			want:  []BounceRecipient{{Address: "gone@example.org", Action: "failed", Status: "5.0.0", Diagnostic: "gone@example.org Unknown user", Hard: true}},
		},
		{
			name: "SES bounce notification",
			m: msg(`{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"gone@example.org","action":"failed","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},"mail":{"commonHeaders":{"messageId":"<sd-1@mail.desk.example>"}}}`+"\n--\nunsubscribe here",
				"From", "no-reply@sns.amazonaws.com", "X-Amz-Sns-Message-Id", "1"),
			class: ClassBounce, orig: "sd-1@mail.desk.example",
			want: []BounceRecipient{{Address: "gone@example.org", Action: "failed", Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 user unknown", Hard: true}},
		},
		{
			name: "SES transient bounce is never hard",
			m: msg(`{"Type":"Notification","Message":"{\"notificationType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Transient\",\"bouncedRecipients\":[{\"emailAddress\":\"a@example.org\",\"status\":\"5.1.1\"}]}}"}`,
				"From", "no-reply@sns.amazonaws.com"),
			class: ClassBounce,
			want:  []BounceRecipient{{Address: "a@example.org", Action: "failed", Status: "5.1.1", Retryable: true}},
		},
		{
			name: "sendmail transcript",
			m: msg("   ----- Transcript of session follows -----\n... while talking to mx.example.org.:\n>>> RCPT To:<a@example.org>\n<<< 550 5.1.1 No such user\n"+
				"550 <a@example.org>... User unknown\n>>> DATA\n<<< 554 Rejected by policy\n554 <b@example.net>... Service unavailable\n"+
				"550 example.com (smtp)... 550 Host unknown\n\n   ----- Unsent message follows -----\n"+returnedHeaders,
				"From", "Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>", "Subject", "Returned mail: User unknown"),
			class: ClassBounce, orig: "sd-1.abc@mail.desk.example",
			want: []BounceRecipient{
				{Address: "a@example.org", Action: "failed", Status: "5.1.1", Diagnostic: ">>> RCPT To:<a@example.org> <<< 550 5.1.1 No such user 550 <a@example.org>... User unknown", Hard: true},
				{Address: "b@example.net", Action: "failed", Diagnostic: ">>> DATA <<< 554 Rejected by policy 554 <b@example.net>... Service unavailable", Retryable: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.m, opts)
			if got.Class != tt.class {
				t.Fatalf("class %s (%s), want %s", got.Class, got.Reason, tt.class)
			}
			if got.Bounce == nil {
				t.Fatalf("no Bounce details")
			}
			if got.Bounce.OriginalMessageID != tt.orig {
				t.Errorf("OriginalMessageID %q, want %q", got.Bounce.OriginalMessageID, tt.orig)
			}
			if !reflect.DeepEqual(got.Bounce.Recipients, tt.want) {
				t.Errorf("recipients\n got %+v\nwant %+v", got.Bounce.Recipients, tt.want)
			}
			if failed := got.Bounce.Failed(); failed != (tt.class == ClassBounce) {
				t.Errorf("Failed() = %v for class %s", failed, got.Class)
			}
		})
	}
}

// TestOriginalMessageID checks where the Message-ID of the bounced mail is taken from.
func TestOriginalMessageID(t *testing.T) {
	status := "Final-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n"
	tests := []struct {
		name string
		m    *parse.Message
		want string
	}{
		{"message/rfc822 part", dsn("", status, part("message/rfc822", returnedHeaders+"\nbody\n")), "sd-1.abc@mail.desk.example"},
		{"CRLF headers", dsn("", status, part("text/rfc822-headers", "\r\n"+"Subject: x\r\nMessage-Id:\r\n <crlf@mail.desk.example>\r\n")), "crlf@mail.desk.example"},
		{"copy in the text", dsn("Your message could not be delivered.\n\n------ This is a copy of the message, including all the headers. ------\n\n"+returnedHeaders, status), "sd-1.abc@mail.desk.example"},
		{"In-Reply-To of the report", func() *parse.Message {
			m := dsn("", status)
			m.InReplyTo = []string{"irt@mail.desk.example"}
			return m
		}(), "irt@mail.desk.example"},
		{"last References entry", func() *parse.Message {
			m := dsn("", status)
			m.References = []string{"first@x", "last@mail.desk.example"}
			return m
		}(), "last@mail.desk.example"},
		{"none", dsn("", status), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.m, opts)
			if got.Bounce == nil || got.Bounce.OriginalMessageID != tt.want {
				t.Errorf("got %+v, want OriginalMessageID %q", got.Bounce, tt.want)
			}
		})
	}
}

func TestFindStatus(t *testing.T) {
	tests := map[string]string{
		"550 5.1.1 <a@example.org>... User unknown":          "5.1.1",
		"host mx.example.org[192.0.2.153] said: 550 5.2.1 x": "5.2.1",
		"Sorry ... 550 Unknown user. (#5.5.0)":               "5.5.0",
		"connect to 10.5.4.4 failed":                         "",
		"version 2.4.10.1":                                   "",
		"status=4.4.1.":                                      "4.4.1",
		"550 5.1.10 RESOLVER.ADR.RecipientNotFound":          "5.1.10",
		"no code at all":                                     "",
	}
	for in, want := range tests {
		if got := findStatus(in); got != want {
			t.Errorf("findStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassAutomated(t *testing.T) {
	want := map[Class]bool{ClassLoop: true, ClassBounce: true, ClassReport: true, ClassMDN: true,
		ClassAutoreply: true, ClassList: false, ClassNormal: false, Class("unknown"): false}
	for c, w := range want {
		if got := c.Automated(); got != w {
			t.Errorf("%s.Automated() = %v, want %v", c, got, w)
		}
	}
	var b *Bounce
	if b.Failed() {
		t.Errorf("nil Bounce reports a failure")
	}
}
