package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/store"
)

// Every phone number left routing nowhere when numbers became unique is named once in the
// log of each start, with its tenant and ID, so that the operator learns of it even if its
// tenant never looks.
func TestUnroutableNumbersLogged(t *testing.T) {
	t.Parallel()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dir, url := t.TempDir(), d.url(t)
			st, err := store.Open(ctx, store.Options{DataDir: dir, URL: url})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			// Two numbers of globex that an older number of acme had, as dialled, when the
			// migration ran: that is, without a key (it cannot give them one).
			var unroutable []string
			for _, n := range []struct{ slug, number, collides string }{
				{"acme", "+14155550100", ""},
				{"acme", "Sales", ""},
				{"globex", "+14155550199", "14155550100"},
				{"globex", "sales-2", "sales"},
				{"globex", "+14155550101", ""},
			} {
				ten, err := st.EnsureTenant(ctx, n.slug)
				if err != nil {
					t.Fatal(err)
				}
				pn := store.NewPhoneNumber()
				pn.Number, pn.Destination = n.number, "echo"
				if err := store.Create(ctx, st, ten.ID, pn); err != nil {
					t.Fatal(err)
				}
				if n.collides == "" {
					continue
				}
				if _, err := st.DB().ExecContext(ctx, "UPDATE phone_numbers SET number = ?, number_key = NULL WHERE id = ?", n.collides, pn.ID); err != nil {
					t.Fatal(err)
				}
				unroutable = append(unroutable, pn.ID)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			for start := range 2 {
				n := startServe(t, []string{"SWITCHBOARD_DATA_DIR=" + dir, "DATABASE_URL=" + url})
				out := n.log.String() // written before the node says it serves
				if got := strings.Count(out, "phone number routes nowhere"); got != len(unroutable) {
					t.Fatalf("start %d: %d lines about numbers that route nowhere, want %d:\n%s", start, got, len(unroutable), out)
				}
				for _, id := range unroutable {
					if strings.Count(out, id) != 1 {
						t.Errorf("start %d: %s named %d times, want once:\n%s", start, id, strings.Count(out, id), out)
					}
				}
				n.signal(syscall.SIGTERM)
				if code := n.waitExit(30 * time.Second); code != 0 {
					t.Fatalf("start %d: exit %d", start, code)
				}
			}
		})
	}
}
