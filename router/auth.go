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

// valid reports whether the request carries a known key. Every known key
// is compared, in constant time, whatever matches.
func (k *apiKeys) valid(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
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

// require wraps h: requests to paths not in public need a valid key.
func (k *apiKeys) require(h http.Handler, public map[string]bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public[r.URL.Path] || k.valid(r) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "",
			"Incorrect or missing API key: send Authorization: Bearer <key>.")
	})
}
