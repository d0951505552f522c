// Package mailout sends deskd's mail: a durable outbox written in the caller's transaction, a Sender
// that drains it over SMTP with go-mail, threading and loop-safe headers, and the rate limits and loop
// breaker that keep deskd from mailing machines (DESIGN.md invariant 5).
//
// # Outbox
//
// Outbox.Enqueue writes one outbox row inside the transaction of the change that causes the mail
// (DESIGN.md invariant 2). The row is keyed by the mail's idempotency key (INSERT .. ON CONFLICT DO
// NOTHING), holds the message already rendered to RFC 5322 bytes, and its Message-ID is fixed at
// that moment, derived from the ticket's signed token and the key. Every attempt to send the row
// transmits exactly those bytes. The loop and flood policy runs in the same transaction: a
// suppressed mail is an outbox row with status 'suppressed' plus a mail_suppressed event, and it
// commits, or rolls back, with the change.
//
// # Headers
//
// Message-ID "t.TOKEN.HASH@desk-domain" (RFC 5322 §3.6.4, token from internal/token); In-Reply-To the
// message answered and References its chain plus it, capped at MaxReferences (ThreadHeaders); From
// the queue address with the desk's display name; Reply-To the queue address plus-addressed with the
// token; the envelope sender is that reply address too, so bounces thread to the ticket.
// Automated mail carries Auto-Submitted (RFC 3834 §5) and Precedence: bulk; all mail carries
// X-Auto-Response-Suppress: All and LoopHeader with the desk's domain. Header values have CR and LF
// removed (no header injection) and non-ASCII is written as RFC 2047 encoded words, folded at 78.
//
// # Sending and the at-least-once window
//
// Sender.Run polls the outbox. Each round (runOnce) claims up to BatchSize due rows with FOR UPDATE
// SKIP LOCKED, marks them 'sending' with a lease (next_attempt_at = now + lease), counts the attempt
// and commits BEFORE any SMTP traffic; only then are the rows sent, and each outcome is committed in
// its own transaction: 'sent'; 'pending' again after a temporary failure (4xx reply, network or TLS
// error), with capped exponential backoff and jitter, until the row's deadline (created_at +
// RetryDeadline, default 24h); 'dead' after a permanent failure (5xx) or the deadline. A dead mail
// writes a mail_dead event on its ticket and a dead_letter notice to the queue's agents (never for a
// notice itself). A recipient refused with 5xx gets a mail_refused event and the mail goes to the
// others; one refused with 5.1.x (RFC 3463 addressing status) is marked undeliverable in contacts,
// and later mail to it is suppressed at enqueue.
//
// Delivery is at least once, and a duplicate is possible in exactly one window: after the SMTP server
// has accepted the message (its 250 reply to the final "." of DATA) and before the transaction that
// marks the row 'sent' is durable. That commit is asynchronous (synchronous_commit off, to keep the
// sender from competing with ingest for WAL flushes), so the window also covers the fraction of a
// second until PostgreSQL flushes its WAL: a PostgreSQL crash then loses the marker, with the same
// effect as a crash before the commit. If the process dies, the database becomes unreachable or the commit
// fails in that window, the row stays 'sending' until its lease expires and is then claimed again and
// sent again, byte for byte, with the SAME Message-ID. Each such interruption causes at most one extra
// delivery of that mail. Everything outside the window is exactly once: a crash before acceptance
// resends a mail the server never took, and a crash after the commit resends nothing. Because a row
// is only put on the wire when its whole SMTP transaction (bounded by the SMTP timeout) ends before
// its lease does, a slow sender cannot be overtaken by another replica while transmitting, and an
// outcome written by an overtaken sender is discarded (updates are guarded by the attempt number).
// Receivers can discard the duplicate by its Message-ID (RFC 5322 §3.6.4: one id, one message).
// Leases compare the clocks of the replicas that claim rows, so keep them synchronised (NTP): a skew
// shortens or lengthens a lease by that much. The default lease is the SMTP timeout times (rows per
// worker + 2): 7.5 minutes with the defaults (30s, 50 rows, 4 workers).
//
// # Loop and flood protection
//
// Enqueue never sends to the desk's own addresses (or their plus-variants), to contacts marked
// undeliverable, or when the caller flags the recipients as machines (Mail.Machine). Automated mail
// (Mail.AutoSubmitted set) is limited per recipient, per ticket and globally per hour; human-authored
// agent replies are never rate limited. When a ticket's automated mail hits its limit, which is what
// a mail loop looks like, the ticket's loop breaker trips: automated mail about the ticket is
// suppressed for BreakerCooldown and the queue's agents get one loop_detected notice per trip.
package mailout
