package mailin

import (
	"log/slog"

	"github.com/deskd/deskd/internal/config"
)

// PollersFromConfig maps a validated configuration onto one MailboxConfig per configured mailbox
// and the PollerOptions they share (logging to log). It is called once at start-up, like
// OptionsFromConfig; pollers never read the configuration themselves.
func PollersFromConfig(cfg *config.Config, log *slog.Logger) ([]MailboxConfig, PollerOptions) {
	mbs := make([]MailboxConfig, 0, len(cfg.Mailboxes))
	for _, m := range cfg.Mailboxes {
		mbs = append(mbs, MailboxConfig{
			Name: m.Name, Host: m.Host, Port: m.Port, TLS: m.TLS,
			AllowInsecure: m.AllowInsecure, InsecureSkipVerify: m.InsecureSkipVerify,
			Auth: m.Auth, User: m.User, Password: m.Password,
			Folder: m.Folder, ProcessedFolder: m.ProcessedFolder,
		})
	}
	in := cfg.MailIn
	return mbs, PollerOptions{
		MaxMessageBytes: int64(in.MaxMessageBytes),
		PollInterval:    in.PollInterval,
		IdleRefresh:     in.IdleRefresh,
		ReconnectMin:    in.ReconnectMin,
		ReconnectMax:    in.ReconnectMax,
		Log:             log,
	}
}
