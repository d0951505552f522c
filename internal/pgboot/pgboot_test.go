package pgboot

import (
	"context"
	"net/url"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/deskd/deskd/internal/testdb"
)

func TestEnsureFreshCreatesDatabase(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(testdb.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	name := "deskd_pgboot_bench_test"
	u.Path = "/" + name
	admin, err := pgx.Connect(ctx, testdb.AdminURL())
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close(ctx)
	admin.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	t.Cleanup(func() { admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	if _, err := EnsureFresh(ctx, "postgres://postgres@127.0.0.1:5432/production", func(string) {}); err == nil {
		t.Error("EnsureFresh accepted a database without demo or bench in its name")
	}
	for range 2 { // the second call drops and recreates it
		d, err := EnsureFresh(ctx, u.String(), func(s string) { t.Log(s) })
		if err != nil {
			t.Fatal(err)
		}
		if d.Private {
			t.Fatal("started a private cluster although a server answers")
		}
		c, err := pgx.Connect(ctx, d.URL)
		if err != nil {
			t.Fatalf("connect to ensured database: %v", err)
		}
		c.Close(ctx)
	}
}

func TestEnsureStartsPrivateClusterWhenNoServerAnswers(t *testing.T) {
	if _, err := serverBinDir(); err != nil {
		t.Skip("PostgreSQL server binaries not installed")
	}
	ctx := context.Background()
	port, _ := freePort() // nothing listens there
	var notes []string
	d, err := EnsureFresh(ctx, "postgres://postgres@127.0.0.1:"+itoa(port)+"/deskd_demo?sslmode=disable", func(s string) { notes = append(notes, s) })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Private || len(notes) != 1 {
		t.Fatalf("private %v notes %v", d.Private, notes)
	}
	c, err := pgx.Connect(ctx, d.URL)
	if err != nil {
		t.Fatalf("connect to private cluster: %v", err)
	}
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("query: %v", err)
	}
	c.Close(ctx)
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestThrowawayURLNeverPointsAtRealData(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	if got := ThrowawayURL("demo"); got != "postgres://postgres@127.0.0.1:5432/deskd_demo?sslmode=disable" {
		t.Errorf("default: %s", got)
	}
	t.Setenv("DATABASE_URL", "postgres://u:p@db.internal:5433/production?sslmode=require")
	if got := ThrowawayURL("bench"); got != "postgres://u:p@db.internal:5433/deskd_bench?sslmode=require" {
		t.Errorf("real database renamed: %s", got)
	}
	t.Setenv("DATABASE_URL", "postgres://u@h/my_demo_db")
	if got := ThrowawayURL("demo"); got != "postgres://u@h/my_demo_db" {
		t.Errorf("demo database kept: %s", got)
	}
}
