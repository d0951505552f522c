// Package sla will hold deskd's service level management: pure business-hours calendar math
// (rickar/cal holidays, per-queue working hours, an injected clock) and a Scheduler that finds due
// response and resolution clocks from an index and runs the escalation ladder (warn, breach,
// re-assign, notify) exactly once across replicas (FOR UPDATE SKIP LOCKED).
//
// It is reserved and empty: no SLA clock is kept yet, and the `sla` configuration key is accepted but
// not used (internal/config documents it as reserved). The escalation template exists in templates.
// A later change fills it.
package sla
