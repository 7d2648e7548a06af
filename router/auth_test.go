package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-llm/switchyard/internal/embedetcd"
)

// runRouter runs a router with cfg against an embedded etcd of its own
// and returns its base URL; it stops with the test.
func runRouter(t *testing.T, cfg Config) string {
	t.Helper()
	etcd, err := embedetcd.Start(t.Context(), t.TempDir(), "127.0.0.1", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Etcd, cfg.Listener, cfg.Logger = []string{etcd.Endpoint}, lis, testLogger(t)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		etcd.Close()
	})
	base := "http://" + lis.Addr().String()
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base
		}
		if i == 100 {
			t.Fatal("the router never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type answer struct {
	code int
	body string
	hdr  http.Header
}

func do(t *testing.T, c *http.Client, method, u, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// TestDashboardSignIn: with API keys on, a browser gets a sign-in form
// instead of a bare 401; a valid key is kept in an HttpOnly, SameSite
// Strict session cookie that opens the dashboard and the statistics and
// nothing else, and stops working when the key is removed.
func TestDashboardSignIn(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# keys\nsk-good\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := runRouter(t, Config{APIKeysFile: keys})
	jar, _ := cookiejar.New(nil)
	// No redirects followed: the test reads each answer itself.
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := "application/x-www-form-urlencoded"

	if a := do(t, browser, "GET", base+"/dashboard", "", ""); a.code != 401 || !strings.Contains(a.body, `<form id="signin"`) || strings.Contains(a.body, "signin-error") {
		t.Fatalf("dashboard before signing in: %d, want 401 with the sign-in form:\n%.400s", a.code, a.body)
	}
	if a := do(t, browser, "POST", base+"/dashboard/sign-in", form, "key=sk-bad"); a.code != 401 || !strings.Contains(a.body, "That key is not valid.") || a.hdr.Get("Set-Cookie") != "" {
		t.Errorf("a wrong key: %d, Set-Cookie %q, want 401 saying so and no cookie", a.code, a.hdr.Get("Set-Cookie"))
	}
	a := do(t, browser, "POST", base+"/dashboard/sign-in", form, "key="+url.QueryEscape("sk-good"))
	if a.code != http.StatusSeeOther || a.hdr.Get("Location") != "/dashboard" {
		t.Fatalf("sign-in: %d to %q, want 303 to /dashboard", a.code, a.hdr.Get("Location"))
	}
	set := a.hdr.Get("Set-Cookie")
	for _, want := range []string{sessionCookie + "=sk-good", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(set, want) {
			t.Errorf("Set-Cookie %q lacks %q", set, want)
		}
	}
	if strings.Contains(set, "Expires") || strings.Contains(set, "Max-Age") {
		t.Errorf("Set-Cookie %q outlives the browser session", set)
	}
	if a := do(t, browser, "GET", base+"/dashboard", "", ""); a.code != 200 || !strings.Contains(a.body, `id="heatmap"`) {
		t.Errorf("dashboard after signing in: %d, want the page", a.code)
	}
	if a := do(t, browser, "GET", base+"/v1/routing/stats?window=all", "", ""); a.code != 200 || a.hdr.Get("X-Switchyard-Session") != "cookie" {
		t.Errorf("stats with the session: %d (session header %q), want 200 marked as a session", a.code, a.hdr.Get("X-Switchyard-Session"))
	}
	for _, c := range []struct{ method, path string }{{"POST", "/v1/completions"}, {"POST", "/v1/chat/completions"}, {"GET", "/v1/models"}} {
		if a := do(t, browser, c.method, base+c.path, "application/json", `{"prompt": "x"}`); a.code != 401 {
			t.Errorf("%s %s with only the session cookie: %d, want 401", c.method, c.path, a.code)
		}
	}
	// The key removed from the file: the session ends with it.
	if err := os.WriteFile(keys, []byte("sk-other-and-longer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := do(t, browser, "GET", base+"/dashboard", "", "")
		if a.code == 401 {
			if !strings.Contains(a.body, "no longer valid") {
				t.Errorf("a revoked session's page does not say why:\n%.400s", a.body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its key's removal")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a := do(t, browser, "POST", base+"/dashboard/sign-out", form, ""); a.code != http.StatusSeeOther || !strings.Contains(a.hdr.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("sign-out: %d, Set-Cookie %q, want 303 clearing the cookie", a.code, a.hdr.Get("Set-Cookie"))
	}
	if a := do(t, browser, "GET", base+"/dashboard", "", ""); a.code != 401 || strings.Contains(a.body, "no longer valid") {
		t.Errorf("dashboard after signing out: %d, want the plain sign-in form", a.code)
	}
}

// TestDashboardPublic: --dashboard-public opens the dashboard and the
// statistics, and only those.
func TestDashboardPublic(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("sk-good\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := runRouter(t, Config{APIKeysFile: keys, DashboardPublic: true})
	for _, c := range []struct {
		method, path string
		want         int
	}{{"GET", "/dashboard", 200}, {"GET", "/v1/routing/stats", 200}, {"POST", "/v1/completions", 401}, {"GET", "/v1/models", 401}} {
		if a := do(t, http.DefaultClient, c.method, base+c.path, "application/json", `{"prompt": "x"}`); a.code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, a.code, c.want)
		}
	}
}
