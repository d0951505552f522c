package templates

import "time"

// SampleView returns a fully populated View about a made-up ticket. New renders every template
// with it to catch templates that parse but cannot execute; it is also handy for previews.
func SampleView() View {
	created := time.Date(2026, time.March, 2, 8, 15, 0, 0, time.UTC)
	now := created.Add(26 * time.Hour)
	respond := created.Add(4 * time.Hour)
	resolve := created.Add(3 * 24 * time.Hour)
	until := now.Add(time.Hour)
	return View{
		Now: now,
		Desk: DeskView{
			Name: "IT Service Desk", Address: "support@example.com",
			ReplyHint: "For outages call +1 555 0100.", URL: "https://status.example.com/",
		},
		Ticket: TicketView{
			Key: "SD-1042", Subject: "VPN drops every ten minutes", Kind: "incident", Status: "open",
			Priority: "P2", Queue: "support", URL: "https://desk.example.com/t/SD-1042",
			Requester: Person{Name: "Ana Lima", Email: "ana@example.org"},
			Assignee:  Person{Name: "Ben Okafor", Email: "ben@example.com"},
			CreatedAt: created, ResponseDue: &respond, ResolveDue: &resolve,
		},
		Recipient: Person{Name: "Ana Lima", Email: "ana@example.org"},
		Body:      "Could you send us the VPN client log from this morning?\n\nThanks,\nBen",
		Messages: []MessageView{
			{From: "ben@example.com", FromName: "Ben Okafor", At: created.Add(2 * time.Hour),
				Text: "Checked the gateway: no errors on our side.", Internal: true},
			{From: "ana@example.org", FromName: "Ana Lima", At: created,
				Text: "Since this morning the VPN drops every ten minutes.\nI am on the office Wi-Fi."},
		},
		OldStatus: "open", NewStatus: "pending",
		Escalation: EscalationView{
			Level: 1, Clock: "response", Due: respond, Breached: true,
			Reason: "No first response within 4 business hours.",
		},
		Digest: DigestView{
			Title: "Weekly backlog", From: now.Add(-7 * 24 * time.Hour), To: now,
			Open: 12, New: 30, Resolved: 27, Breached: 2,
			Rows: []DigestRow{
				{Key: "SD-1042", Subject: "VPN drops every ten minutes", Status: "open", Priority: "P2",
					Queue: "support", Assignee: "Ben Okafor", Due: &resolve, Breached: true,
					URL: "https://desk.example.com/t/SD-1042"},
				{Key: "SD-1050", Subject: "New laptop for Carla", Status: "pending", Priority: "P4",
					Queue: "support"},
			},
		},
		Delivery: DeliveryView{
			To: "ana@example.org", Subject: "[SD-1042] VPN drops every ten minutes",
			Reason: "550 5.1.1 mailbox unavailable", Attempts: 5, LastTried: now,
		},
		Loop: LoopView{Address: "noreply@vendor.example", Count: 20, Window: 10 * time.Minute, Until: &until},
		Commands: []CommandIssue{
			{Line: "#status pendng", Reason: `unknown status "pendng"`},
		},
		Extra: map[string]string{"phone": "+1 555 0100"},
	}
}
