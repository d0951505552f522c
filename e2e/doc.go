// Package e2e holds end-to-end tests of the deskd binary against a real mail stack: a private
// Dovecot (IMAP, LMTP) and Postfix (SMTP) from internal/mailstack, s-nail as the requester's mail
// client, and a per-test PostgreSQL database from internal/testdb.
//
// The tests build cmd/deskd, run `deskd serve` as a subprocess with a YAML configuration pointing at
// that stack, and check what a person would see: the acknowledgement in the requester's mailbox with
// its threading and loop-safety headers (RFC 3834, RFC 5322 §3.6.4), replies threaded onto the same
// ticket, agent notifications, no answer to an auto-reply, and a graceful shutdown on SIGTERM.
//
// They skip when Dovecot, Postfix or s-nail are missing, and fail instead under CI=true
// (mailstack.Require); `make test` installs the stack first (scripts/install-mailstack.sh).
//
// The package has no exported API: it exists for its tests.
package e2e
