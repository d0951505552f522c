// Package db owns the PostgreSQL connection pool and the embedded schema migrations.
//
// Migrations are ordered SQL files embedded in the binary. Migrate applies the pending ones in a single
// transaction under a transaction-scoped advisory lock, so two concurrent runs are safe and a second run
// is a no-op. CheckSchema is the gate `deskd serve` uses to refuse an outdated schema.
package db

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLockKey is the pg_advisory_xact_lock key serialising concurrent Migrate calls ("deskdmig").
const migrateLockKey int64 = 0x6465736b646d6967

// ErrSchemaOutdated means the database lacks migrations this binary embeds.
var ErrSchemaOutdated = errors.New("database schema is outdated: run `deskd migrate`")

// ErrSchemaNewer means the database has migrations this binary does not know (a newer deskd migrated it).
var ErrSchemaNewer = errors.New("database schema is newer than this deskd binary: upgrade deskd")

// Migration is one embedded schema change.
type Migration struct {
	Version string // file name without .sql, e.g. "0001_core"
	SQL     string
}

// Migrations returns the embedded migrations in the order they apply.
func Migrations() []Migration {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		panic(fmt.Sprintf("read embedded migrations: %v", err)) // the embed is part of the binary
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("read embedded migration %s: %v", e.Name(), err))
		}
		out = append(out, Migration{Version: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Fingerprint is a hash over all embedded migrations; it changes whenever the schema does.
func Fingerprint() string {
	h := sha256.New()
	for _, m := range Migrations() {
		h.Write([]byte(m.Version))
		h.Write([]byte{0})
		h.Write([]byte(m.SQL))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Open connects a pool to url with at most maxConns connections and pings it.
func Open(ctx context.Context, url string, maxConns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s@%s:%d/%s: %w (is PostgreSQL running? `make pg` starts or installs it)",
			cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// Migrate applies every pending migration in one transaction and returns the versions it applied.
// Concurrent callers serialise on an advisory lock; the later one finds nothing to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return nil, fmt.Errorf("lock migrations: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	done, err := appliedVersions(ctx, tx)
	if err != nil {
		return nil, err
	}
	var applied []string
	for _, m := range Migrations() {
		if done[m.Version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("apply migration %s: %w", m.Version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version); err != nil {
			return nil, fmt.Errorf("record migration %s: %w", m.Version, err)
		}
		applied = append(applied, m.Version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit migrations: %w", err)
	}
	return applied, nil
}

// Pending returns the embedded migrations not yet applied to the database.
func Pending(ctx context.Context, q Querier) ([]string, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("inspect schema: %w", err)
	}
	done := map[string]bool{}
	if exists {
		var err error
		if done, err = appliedVersions(ctx, q); err != nil {
			return nil, err
		}
	}
	var pending []string
	for _, m := range Migrations() {
		if !done[m.Version] {
			pending = append(pending, m.Version)
		}
	}
	return pending, nil
}

// CheckSchema returns ErrSchemaOutdated (wrapped, naming the pending versions) unless every embedded
// migration is applied, and ErrSchemaNewer when the database has versions this binary lacks.
func CheckSchema(ctx context.Context, q Querier) error {
	pending, err := Pending(ctx, q)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("%w (pending: %s)", ErrSchemaOutdated, strings.Join(pending, ", "))
	}
	done, err := appliedVersions(ctx, q)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, m := range Migrations() {
		known[m.Version] = true
	}
	for v := range done {
		if !known[v] {
			return fmt.Errorf("%w (unknown version %s)", ErrSchemaNewer, v)
		}
	}
	return nil
}

// Querier is what both a pool and a transaction offer.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func appliedVersions(ctx context.Context, q Querier) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	done := make(map[string]bool, len(versions))
	for _, v := range versions {
		done[v] = true
	}
	return done, nil
}
