package config

import (
	"slices"
	"testing"
)

func TestLookups(t *testing.T) {
	c := validConfig()
	c.Queues[0].Addresses[1] = "Help@Example.COM"

	if got, want := c.DeskAddresses(), []string{"support@example.com", "help@example.com", "changes@example.com"}; !slices.Equal(got, want) {
		t.Errorf("DeskAddresses() = %q, want %q", got, want)
	}
	if got := c.KeyPrefixes(); !slices.Equal(got, []string{"SD", "CHG"}) {
		t.Errorf("KeyPrefixes() = %q", got)
	}

	queue := func(q *Queue, ok bool) string {
		if !ok {
			return "<none>"
		}
		return q.Name
	}
	for _, tc := range []struct{ got, want string }{
		{queue(c.QueueByName("changes")), "changes"},
		{queue(c.QueueByName("Changes")), "<none>"},
		{queue(c.QueueByAddress("help@example.com")), "support"},
		{queue(c.QueueByAddress("CHANGES@example.com")), "changes"},
		{queue(c.QueueByAddress("sales@example.com")), "<none>"},
		{queue(c.QueueByPrefix("CHG")), "changes"},
		{queue(c.QueueByPrefix("sd")), "support"},
		{queue(c.QueueByPrefix("INC")), "<none>"},
	} {
		if tc.got != tc.want {
			t.Errorf("queue look-up = %s, want %s", tc.got, tc.want)
		}
	}

	if a, ok := c.AgentByEmail("Ana@example.com"); !ok || a.Name != "ana" {
		t.Errorf("AgentByEmail(Ana@example.com) = %v, %v", a, ok)
	}
	if a, ok := c.AgentByEmail("support@example.com"); ok {
		t.Errorf("AgentByEmail(queue address) = %v", a)
	}
	if a, ok := c.AgentByName("bo"); !ok || a.Email != "bo@example.com" {
		t.Errorf("AgentByName(bo) = %v, %v", a, ok)
	}
	if _, ok := c.AgentByName("cy"); ok {
		t.Error("AgentByName(cy) found an agent that does not exist")
	}

	// The pointer refers to the configuration itself.
	if q, _ := c.QueueByName("support"); q != &c.Queues[0] {
		t.Error("QueueByName returned a copy")
	}
}

func TestLogSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "bogus": "INFO"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("Log{Level: %q}.SlogLevel() = %s, want %s", level, got, want)
		}
	}
}
