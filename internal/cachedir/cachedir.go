// Package cachedir chooses where a role keeps what it fetches or unpacks:
// byte ranges of a model read over HTTP, the demo model. It is not a
// cache itself; pkg/httpfile and internal/demomodel write into the
// directory.
package cachedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Choose returns the cache directory, created if missing: dir when it is
// set (an error if it cannot be created), else $XDG_CACHE_HOME/switchyard,
// else $HOME/.cache/switchyard. When neither of those is set or can be
// created (a container's read-only root, a user without a home), it falls
// back to a directory of this user's under the system's temporary
// directory and says why in warning, for the caller to log: such a cache
// lasts only as long as that directory does.
func Choose(dir string) (path string, warning string, err error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", fmt.Errorf("cache directory: %w", err)
		}
		return dir, "", nil
	}
	base, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(base, "switchyard")
		if err = os.MkdirAll(dir, 0o755); err == nil {
			return dir, "", nil
		}
	}
	tmp, terr := private(filepath.Join(os.TempDir(), fmt.Sprintf("switchyard-cache-%d", os.Getuid())))
	if terr != nil {
		return "", "", fmt.Errorf("cache directory: no user cache directory (%v), and none under %s: %w", err, os.TempDir(), terr)
	}
	return tmp, fmt.Sprintf("no user cache directory (%v): caching in %s, which may not outlast a restart; set --cache-dir", err, tmp), nil
}

// private creates dir with mode 0700, or accepts it if it exists as a
// directory (not a link) of this user's that no one else may write: a
// name under a shared temporary directory could be anyone's.
func private(dir string) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return "", fmt.Errorf("%s is not a directory", dir)
	case ok && int(sys.Uid) != os.Getuid():
		return "", fmt.Errorf("%s belongs to user %d, not %d", dir, sys.Uid, os.Getuid())
	case st.Mode().Perm()&0o022 != 0:
		return "", fmt.Errorf("%s is writable by others (mode %v)", dir, st.Mode().Perm())
	}
	return dir, nil
}
