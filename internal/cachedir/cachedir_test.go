package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o755)
	fallback := filepath.Join(tmp, fmt.Sprintf("switchyard-cache-%d", os.Getuid()))
	cases := []struct {
		name           string
		dir, xdg, home string
		want           string
		warn           bool
	}{
		{"flag", filepath.Join(root, "flag", "cache"), filepath.Join(root, "xdg"), root, filepath.Join(root, "flag", "cache"), false},
		{"XDG_CACHE_HOME", "", filepath.Join(root, "xdg"), root, filepath.Join(root, "xdg", "switchyard"), false},
		{"HOME", "", "", filepath.Join(root, "home"), filepath.Join(root, "home", ".cache", "switchyard"), false},
		// A directory under a file cannot be made, even by root: as a
		// read-only root filesystem would refuse it.
		{"HOME not writable", "", "", filepath.Join(file, "home"), fallback, true},
		{"neither set", "", "", "", fallback, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", c.xdg)
			t.Setenv("HOME", c.home)
			t.Setenv("TMPDIR", tmp)
			got, warning, err := Choose(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
			if st, err := os.Stat(got); err != nil || !st.IsDir() {
				t.Errorf("%s was not created: %v", got, err)
			}
			if (warning != "") != c.warn || (c.warn && !strings.Contains(warning, "--cache-dir")) {
				t.Errorf("warning %q, want one: %v", warning, c.warn)
			}
		})
	}
	t.Run("flag not creatable", func(t *testing.T) {
		if _, _, err := Choose(filepath.Join(file, "cache")); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("got %v, want an error naming the cause", err)
		}
	})
}

// TestFallbackIsPrivate: the fallback's name under a shared temporary
// directory is predictable, so a directory there is used only if it is
// this user's own and closed to others.
func TestFallbackIsPrivate(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"writable by others", func(p string) error { os.Mkdir(p, 0o700); return os.Chmod(p, 0o777) }, "writable by others"},
		{"a link", func(p string) error { return os.Symlink(t.TempDir(), p) }, "not a directory"},
		{"a file", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			t.Setenv("XDG_CACHE_HOME", "")
			t.Setenv("HOME", "")
			if err := c.setup(filepath.Join(tmp, fmt.Sprintf("switchyard-cache-%d", os.Getuid()))); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Choose(""); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}
