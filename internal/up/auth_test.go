package up

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAPIKeys(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keys, []byte("# team keys\nsk-alpha\n\nsk-beta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := start(t, Config{APIKeysFile: keys})
	do := func(path, key string) (int, string) {
		body := `{"prompt":"The list","max_tokens":2}`
		if path == "/v1/messages" {
			body = `{"messages":[{"role":"user","content":"The list"}],"max_tokens":2}`
		}
		req, _ := http.NewRequest("POST", c.URL+path, strings.NewReader(body))
		if path == "/healthz" || path == "/metrics" {
			req.Method = "GET"
		}
		switch {
		case path == "/v1/messages" && key != "":
			req.Header.Set("X-Api-Key", key) // Anthropic's clients send keys so
		case key != "":
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Message, Type string }
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Message
	}
	cases := []struct {
		name, path, key string
		code            int
	}{
		{"no key", "/v1/completions", "", 401},
		{"wrong key", "/v1/completions", "sk-gamma", 401},
		{"prefix of a key", "/v1/completions", "sk-alph", 401},
		{"first key", "/v1/completions", "sk-alpha", 200},
		{"second key", "/v1/completions", "sk-beta", 200},
		{"health is public", "/healthz", "", 200},
		{"metrics are public", "/metrics", "", 200},
		{"x-api-key", "/v1/messages", "sk-beta", 200},
		{"wrong x-api-key", "/v1/messages", "sk-gamma", 401},
	}
	for _, tc := range cases {
		code, msg := do(tc.path, tc.key)
		if code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
		if code == 401 && !strings.Contains(msg, "API key") {
			t.Errorf("%s: 401 without an error in the API's shape: %q", tc.name, msg)
		}
	}
	// The file is reloaded when it changes: here its size does, which the
	// reload sees whatever the file system's clock resolution.
	if err := os.WriteFile(keys, []byte("sk-gamma\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := do("/v1/completions", "sk-gamma"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key added to the file is not accepted after 5 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _ := do("/v1/completions", "sk-alpha"); code != 401 {
		t.Errorf("a removed key still works: %d", code)
	}
	// A browser gets a sign-in form for the dashboard, not a bare 401.
	bin, ok := chromiumPath()
	if !ok {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium package)")
		}
		t.Log("chromium is not installed: the sign-in form's browser check is left out")
		return
	}
	dom := headless(t, bin, "--dump-dom", c.URL+"/dashboard")
	if !strings.Contains(dom, `<form id="signin" method="post" action="/dashboard/sign-in">`) || !strings.Contains(dom, `type="password"`) {
		t.Errorf("the dashboard shows no sign-in form in a browser:\n%.1000s", dom)
	}
	shot := filepath.Join(artifacts(t), "dashboard-sign-in.png")
	headless(t, bin, "--window-size=1024,700", "--screenshot="+shot, c.URL+"/dashboard")
	t.Logf("screenshot: %s", shot)
}
