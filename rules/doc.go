// Package rules will hold deskd's rules engine: pure, compiled conditions (expr-lang/expr) over a
// typed view of an inbound message and its ticket, mapped to declarative actions (set queue,
// priority, kind, assignee, add watcher, reply with a template) that mail-in applies inside its ingest
// transaction.
//
// It is reserved and empty: no rule is evaluated yet, and the `rules` configuration key is accepted
// but not used (internal/config documents it as reserved). A later change fills it.
package rules
