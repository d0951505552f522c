package config

import (
	"slices"
	"strings"
)

// The look-ups below scan the configured lists, which hold tens of entries,
// so they need no index. Pointers they return point into c and must not be
// modified.

// DeskAddresses returns every queue address, lowercased, in configuration
// order. Mail from these addresses is the desk's own (loop detection), and
// mail to them belongs to a queue.
func (c *Config) DeskAddresses() []string {
	var out []string
	for _, q := range c.Queues {
		for _, a := range q.Addresses {
			out = append(out, strings.ToLower(a))
		}
	}
	return out
}

// KeyPrefixes returns the queues' ticket key prefixes in configuration
// order.
func (c *Config) KeyPrefixes() []string {
	out := make([]string, 0, len(c.Queues))
	for _, q := range c.Queues {
		out = append(out, q.KeyPrefix)
	}
	return out
}

// QueueByName returns the queue named name.
func (c *Config) QueueByName(name string) (*Queue, bool) {
	return find(c.Queues, func(q *Queue) bool { return q.Name == name })
}

// QueueByAddress returns the queue owning the bare address addr, compared
// case-insensitively.
func (c *Config) QueueByAddress(addr string) (*Queue, bool) {
	return find(c.Queues, func(q *Queue) bool {
		return slices.ContainsFunc(q.Addresses, func(a string) bool { return strings.EqualFold(a, addr) })
	})
}

// QueueByPrefix returns the queue whose key prefix is prefix, compared
// case-insensitively so that a subject tag "[sd-1042]" still finds "SD".
func (c *Config) QueueByPrefix(prefix string) (*Queue, bool) {
	return find(c.Queues, func(q *Queue) bool { return strings.EqualFold(q.KeyPrefix, prefix) })
}

// AgentByName returns the agent named name.
func (c *Config) AgentByName(name string) (*Agent, bool) {
	return find(c.Agents, func(a *Agent) bool { return a.Name == name })
}

// AgentByEmail returns the agent whose address is the bare address addr,
// compared case-insensitively. A match identifies who claims to write, not
// who does: mail From an agent needs proof (DESIGN.md invariant 6).
func (c *Config) AgentByEmail(addr string) (*Agent, bool) {
	return find(c.Agents, func(a *Agent) bool { return strings.EqualFold(a.Email, addr) })
}

// find returns a pointer to the first item of items that match accepts.
func find[T any](items []T, match func(*T) bool) (*T, bool) {
	for i := range items {
		if match(&items[i]) {
			return &items[i], true
		}
	}
	return nil, false
}
