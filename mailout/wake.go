package mailout

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// WakeChannel is the PostgreSQL notification channel a trigger on outbox signals at commit
// (migration 0004), so the Sender sends new mail at once instead of at its next poll.
const WakeChannel = "deskd_outbox"

// listen returns a channel that receives a value shortly after any transaction that enqueued mail
// commits. It holds one pooled connection in LISTEN until ctx ends and re-listens after errors.
// Notifications are only a hint: callers keep polling, so a lost one delays mail, never loses it.
func listen(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) <-chan struct{} {
	wake := make(chan struct{}, 1)
	go func() {
		backoff := time.Second
		for ctx.Err() == nil {
			err := listenOnce(ctx, pool, wake)
			if ctx.Err() != nil {
				return
			}
			log.WarnContext(ctx, "listen for outbox notifications; polling meanwhile", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
	return wake
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, wake chan<- struct{}) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+WakeChannel); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+WakeChannel) //nolint:errcheck // the conn goes back to the pool
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		select {
		case wake <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}
