package router

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// apiKeys checks Authorization: Bearer keys against a file of one key per
// line ('#' starts a comment), reloaded when the file changes.
type apiKeys struct {
	path string

	mu      sync.Mutex
	modTime time.Time
	size    int64
	keys    [][32]byte // SHA-256 of each key: compared in constant time
	checked time.Time
}

func newAPIKeys(path string) (*apiKeys, error) {
	k := &apiKeys{path: path}
	if err := k.reload(true); err != nil {
		return nil, err
	}
	return k, nil
}

// reload rereads the file if it changed (checked at most once a second).
func (k *apiKeys) reload(force bool) error {
	if !force && time.Since(k.checked) < time.Second {
		return nil
	}
	k.checked = time.Now()
	st, err := os.Stat(k.path)
	if err != nil {
		return err
	}
	if !force && st.ModTime().Equal(k.modTime) && st.Size() == k.size {
		return nil
	}
	f, err := os.Open(k.path)
	if err != nil {
		return err
	}
	defer f.Close()
	var keys [][32]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	k.keys, k.modTime, k.size = keys, st.ModTime(), st.Size()
	return nil
}

// valid reports whether token is a known key. Every known key is
// compared, in constant time, whatever matches.
func (k *apiKeys) valid(token string) bool {
	if token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	k.mu.Lock()
	k.reload(false) // on error keep the keys loaded last
	keys := k.keys
	k.mu.Unlock()
	match := 0
	for _, key := range keys {
		match |= subtle.ConstantTimeCompare(sum[:], key[:])
	}
	return match == 1
}

// sessionCookie holds the API key given to the dashboard's sign-in form:
// HttpOnly (no script reads it), SameSite=Strict (no other site's page
// sends it) and for the browser session only.
const sessionCookie = "switchyard_session"

// sessionPaths are what a dashboard session opens: the page and the
// statistics it reads, nothing that generates or changes anything.
var sessionPaths = map[string]bool{"/dashboard": true, "/v1/routing/stats": true}

// maxSignInBody bounds the sign-in form's body.
const maxSignInBody = 4 << 10

// require wraps h: requests to paths not in public need a valid key, sent
// as Authorization: Bearer or x-api-key (Anthropic's clients), or for
// sessionPaths in the session cookie that the dashboard's sign-in form
// sets.
func (k *apiKeys) require(h http.Handler, public map[string]bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		cookie, _ := r.Cookie(sessionCookie)
		switch {
		case public[r.URL.Path] || k.valid(bearer) || k.valid(r.Header.Get("X-Api-Key")):
			h.ServeHTTP(w, r)
		case sessionPaths[r.URL.Path] && r.Method == http.MethodGet && cookie != nil && k.valid(cookie.Value):
			w.Header().Set("X-Switchyard-Session", "cookie")
			h.ServeHTTP(w, r)
		case r.URL.Path == "/dashboard/sign-in" && r.Method == http.MethodPost:
			k.signIn(w, r)
		case r.URL.Path == "/dashboard/sign-out" && r.Method == http.MethodPost:
			setSession(w, r, "")
			http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
		case r.URL.Path == "/dashboard" && r.Method == http.MethodGet:
			msg := ""
			if cookie != nil {
				msg = "The key this browser signed in with is no longer valid."
			}
			showSignIn(w, msg)
		case r.URL.Path == "/v1/messages":
			writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "Incorrect or missing API key: send x-api-key: <key>.")
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(w, http.StatusUnauthorized, "invalid_request_error", "",
				"Incorrect or missing API key: send Authorization: Bearer <key>.")
		}
	})
}

// signIn checks the form's key and, when valid, keeps it in the session
// cookie and goes to the dashboard.
func (k *apiKeys) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSignInBody)
	key := strings.TrimSpace(r.PostFormValue("key"))
	if !k.valid(key) {
		showSignIn(w, "That key is not valid.")
		return
	}
	setSession(w, r, key)
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// setSession sets the session cookie to key, or clears it when key is "".
func setSession(w http.ResponseWriter, r *http.Request, key string) {
	c := &http.Cookie{Name: sessionCookie, Value: key, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"}
	if key == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// showSignIn answers 401 with the sign-in form.
func showSignIn(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	signInPage.Execute(w, struct{ Error string }{msg})
}
