package classify

import (
	"encoding/json"
	"strings"

	"github.com/deskd/deskd/mailin/parse"
)

// Amazon SES can send its bounce, complaint and delivery notifications as JSON e-mail through
// Amazon SNS (the "email" protocol mails the JSON itself, "email-json" wraps it in an SNS
// envelope whose Message field holds it as a string), followed by an unsubscribe trailer.
// Documented at https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html.

type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Message          string `json:"Message"` // SNS email-json envelope
	Mail             struct {
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
	Bounce struct {
		BounceType        string `json:"bounceType"` // Permanent, Transient, Undetermined
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Delivery struct {
		Recipients   []string `json:"recipients"`
		SMTPResponse string   `json:"smtpResponse"`
	} `json:"delivery"`
}

// decodeSES decodes the first JSON value of text as an SES notification, unwrapping an SNS
// envelope; ok is false when text is not one.
func decodeSES(text string) (sesNotification, bool) {
	var n sesNotification
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "{") {
		return n, false
	}
	if err := json.NewDecoder(strings.NewReader(text)).Decode(&n); err != nil {
		return n, false
	}
	if n.NotificationType == "" && n.EventType == "" && strings.HasPrefix(strings.TrimSpace(n.Message), "{") {
		return decodeSES(n.Message)
	}
	if n.NotificationType == "" {
		n.NotificationType = n.EventType
	}
	return n, n.NotificationType != ""
}

// classifySES recognises SES notifications mailed by SNS.
func classifySES(m *parse.Message) (Result, bool) {
	if !hasHeader(m, "X-Amz-Sns-Message-Id") && !strings.HasSuffix(domainPart(fromAddress(m)), "amazonaws.com") {
		return Result{}, false
	}
	n, ok := decodeSES(clip(m.Text))
	if !ok {
		return Result{}, false
	}
	b := &Bounce{OriginalMessageID: msgID(n.Mail.CommonHeaders.MessageID)}
	reason := "Amazon SES notification: " + n.NotificationType
	switch strings.ToLower(n.NotificationType) {
	case "bounce":
		for _, br := range n.Bounce.BouncedRecipients {
			if len(b.Recipients) >= maxRecipients {
				break
			}
			r := BounceRecipient{Address: cleanAddress(br.EmailAddress), Action: strings.ToLower(br.Action),
				Status: leadingStatus(br.Status), Diagnostic: br.DiagnosticCode}
			if r.Action == "" {
				r.Action = ActionFailed
			}
			v := judge(r.Action, r.Status, findReplyCode(br.DiagnosticCode), br.DiagnosticCode, "")
			// SES says whether it will stop sending: only Permanent bounces can be hard.
			r.Hard = v.hard && strings.EqualFold(n.Bounce.BounceType, "Permanent")
			r.Retryable = !r.Hard && (v.retryable || !strings.EqualFold(n.Bounce.BounceType, "Permanent"))
			b.Recipients = append(b.Recipients, r)
		}
		if strings.EqualFold(n.Bounce.BounceType, "Transient") {
			// SES retried and gave up on a soft failure; still a failure of this message.
			reason += " (transient)"
		}
		return Result{Class: ClassBounce, Reason: reason, Bounce: b}, true
	case "delivery":
		for _, a := range n.Delivery.Recipients {
			if len(b.Recipients) >= maxRecipients {
				break
			}
			b.Recipients = append(b.Recipients, BounceRecipient{Address: cleanAddress(a), Action: ActionDelivered,
				Status: findStatus(n.Delivery.SMTPResponse), Diagnostic: n.Delivery.SMTPResponse})
		}
		return Result{Class: ClassReport, Reason: reason, Bounce: b}, true
	}
	// Complaint, Send, Reject, Open, Click ...: machine mail about our sending, never a ticket.
	return Result{Class: ClassReport, Reason: reason}, true
}
