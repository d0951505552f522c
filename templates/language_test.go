package templates

import "testing"

func TestPickLanguage(t *testing.T) {
	avail := []string{"en", "de", "pt-BR"}
	tests := []struct {
		requester, queue string
		available        []string
		want             string
	}{
		{"de", "en", avail, "de"},
		{"DE_at", "en", avail, "de"},                    // region falls back to the primary language
		{"fr", "de", avail, "de"},                       // unknown requester language: the queue's
		{"", "de", avail, "de"},                         // no requester language: the queue's
		{"fr", "it", avail, "en"},                       // neither available: English
		{"", "", avail, "en"},                           //
		{"pt", "", avail, "pt-BR"},                      // a regional tag serves its primary language
		{"pt-br", "", avail, "pt-BR"},                   // as written in available
		{"de", "", []string{"fr"}, "en"},                // English even when not listed
		{"de-ch", "", []string{"de-CH", "de"}, "de-CH"}, // exact beats primary
	}
	for _, tt := range tests {
		got := PickLanguage(tt.requester, tt.queue, tt.available)
		if got != tt.want {
			t.Errorf("PickLanguage(%q, %q, %v) = %q, want %q", tt.requester, tt.queue, tt.available, got, tt.want)
		}
	}
}
