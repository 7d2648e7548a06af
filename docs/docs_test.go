package docs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A fenced block's info string says what the test does with it:
//
//	```sh                     run it; it must exit 0
//	```sh no-check: REASON    list it, with the reason it cannot run here
//	```go run                 a whole program: build it in a module with the
//	                          repository's dependencies and run it
//	```json output            what the block before prints, compared as JSON
//	                          (but for "created" and "id", which vary)
//	```text output            what the block before prints, compared line by
//	                          line (trailing spaces aside)
//
// Blocks of other languages (jsonc, yaml, text without output) are prose.
type block struct {
	file   string
	line   int
	lang   string
	opts   string // the info string after the language
	body   string
	output *block // the block showing what this one prints
}

func (b *block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// first is the block's first line, for the report.
func (b *block) first() string {
	line, _, _ := strings.Cut(strings.TrimSpace(b.body), "\n")
	if len(line) > 90 {
		line = line[:87] + "..."
	}
	return line
}

var fence = regexp.MustCompile("^```(\\S*)\\s*(.*)$")

// parse returns the fenced blocks of a Markdown file, with output blocks
// attached to the block before them.
func parse(t *testing.T, path, name string) []*block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*block
	var cur *block
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			if m := fence.FindStringSubmatch(line); m != nil {
				cur = &block{file: name, line: n, lang: m[1], opts: strings.TrimSpace(m[2])}
				body.Reset()
			}
			continue
		}
		if strings.HasPrefix(line, "```") {
			cur.body = body.String()
			if cur.opts == "output" {
				if len(out) == 0 || out[len(out)-1].output != nil || !runnable(out[len(out)-1]) {
					t.Errorf("%s: an output block must follow a block that runs", cur)
				} else {
					out[len(out)-1].output = cur
				}
			} else {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		body.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Errorf("%s: unclosed block", cur)
	}
	for _, b := range out {
		switch {
		case (b.lang == "sh" || b.lang == "go") && strings.HasPrefix(b.opts, "no-check"):
			if reason, _ := strings.CutPrefix(b.opts, "no-check:"); strings.TrimSpace(reason) == "" || reason == b.opts {
				t.Errorf("%s: no-check without a reason (write 'no-check: why')", b)
			}
		case b.lang == "sh" && b.opts != "", b.lang == "go" && b.opts != "run" && b.opts != "":
			t.Errorf("%s: unknown options %q", b, b.opts)
		}
	}
	return out
}

func runnable(b *block) bool {
	return (b.lang == "sh" && b.opts == "") || (b.lang == "go" && b.opts == "run")
}

// rig is what the blocks run against: the switchyard binary (on PATH), a
// cluster started with `switchyard up`, and a scratch directory that
// stands in for /tmp and holds links to the repository's data.
type rig struct {
	root, bin, work, tmp string
	url, etcd            string
	env                  []string
}

// setUp builds switchyard with the noasm tag (the Go kernels, which give
// the bits of the AVX2 ones: the texts shown hold on any CPU) and starts
// `up` on a free loopback port, with a plaintext etcd whose address
// replaces 127.0.0.1:2379 in the blocks.
func setUp(t *testing.T) *rig {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{root: root, bin: t.TempDir(), work: t.TempDir(), tmp: t.TempDir()}
	build := exec.Command("go", "build", "-tags", "noasm", "-o", filepath.Join(r.bin, "switchyard"), "./cmd/switchyard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The blocks run in a directory that looks like the repository (its
	// entries linked) but whose writes stay out of it.
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case ".git", "switchyard", "artifacts", "node_modules":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(r.work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	r.env = append(os.Environ(), "PATH="+r.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+r.tmp, "NO_COLOR=1", "SWITCHYARD_LOG=warn")

	logPath := filepath.Join(t.TempDir(), "up.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	up := exec.Command(filepath.Join(r.bin, "switchyard"), "up", "--listen", "127.0.0.1:0", "--insecure", "--cache-dir", filepath.Join(r.tmp, "cache"))
	up.Stdout, up.Stderr = logf, logf
	up.Env = append(r.env, "SWITCHYARD_LOG=info")
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		up.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { up.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			up.Process.Kill()
			<-done
		}
		logf.Close()
	})
	ready := regexp.MustCompile(`ready: (http://\S+)`)
	etcd := regexp.MustCompile(`embedded etcd serving.* endpoint=(http://\S+)`)
	deadline := time.Now().Add(3 * time.Minute)
	for r.url == "" || r.etcd == "" {
		b, _ := os.ReadFile(logPath)
		if m := ready.FindSubmatch(b); m != nil {
			r.url = string(m[1])
		}
		if m := etcd.FindSubmatch(b); m != nil {
			r.etcd = string(m[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchyard up was not ready after 3 minutes:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r
}

// localize points a block at this test's binary, cluster and scratch
// directory.
func (r *rig) localize(s string) string {
	return strings.NewReplacer(
		"go run ./cmd/switchyard", "switchyard",
		"http://127.0.0.1:8080", r.url, "127.0.0.1:8080", strings.TrimPrefix(r.url, "http://"),
		"http://localhost:8080", r.url, "localhost:8080", strings.TrimPrefix(r.url, "http://"),
		"http://127.0.0.1:2379", r.etcd,
		"/tmp/", r.tmp+"/",
	).Replace(s)
}

// run runs a block and returns what it printed on stdout.
func (r *rig) run(t *testing.T, b *block) (string, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	switch b.lang {
	case "sh":
		cmd = exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", r.localize(b.body))
		cmd.Dir = r.work
	case "go":
		dir, err := r.module(b)
		if err != nil {
			return "", err
		}
		cmd = exec.CommandContext(ctx, "go", "run", ".")
		cmd.Dir = dir
	}
	cmd.Env = r.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	// Paths in the scratch directory print as the /tmp ones the block names.
	got := strings.ReplaceAll(out.String(), r.tmp+"/", "/tmp/")
	if err != nil {
		return got, fmt.Errorf("%v\nstdout:\n%s\nstderr:\n%s", err, got, errOut.String())
	}
	return got, nil
}

// module writes a Go block as the main package of a module that requires
// what the repository does, resolved from the local module cache.
func (r *rig) module(b *block) (string, error) {
	dir, err := os.MkdirTemp(r.tmp, "example-")
	if err != nil {
		return "", err
	}
	mod, err := os.ReadFile(filepath.Join(r.root, "go.mod"))
	if err != nil {
		return "", err
	}
	sum, err := os.ReadFile(filepath.Join(r.root, "go.sum"))
	if err != nil {
		return "", err
	}
	mod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAll(mod, []byte("module example"))
	for name, data := range map[string][]byte{"go.mod": mod, "go.sum": sum, "main.go": []byte(r.localize(b.body))} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// same compares what a block printed with its output block.
func same(got string, want *block) (bool, string) {
	switch want.lang {
	case "json":
		var g, w any
		if err := json.Unmarshal([]byte(got), &g); err != nil {
			return false, fmt.Sprintf("not JSON: %v", err)
		}
		if err := json.Unmarshal([]byte(want.body), &w); err != nil {
			return false, fmt.Sprintf("the documented output is not JSON: %v", err)
		}
		for _, v := range []any{g, w} {
			if m, ok := v.(map[string]any); ok {
				delete(m, "created")
				delete(m, "id")
			}
		}
		return reflect.DeepEqual(g, w), ""
	default:
		trim := func(s string) string {
			lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
			for i, l := range lines {
				lines[i] = strings.TrimRight(l, " \t")
			}
			return strings.Join(lines, "\n")
		}
		return trim(got) == trim(want.body), ""
	}
}

// TestDocs runs every block of README.md and docs/*.md in order, file by
// file, and lists what it checked and what it could not.
func TestDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and runs every documented command")
	}
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []*block
	blocks = append(blocks, parse(t, "../README.md", "README.md")...)
	for _, f := range files {
		blocks = append(blocks, parse(t, f, "docs/"+f)...)
	}
	if t.Failed() {
		t.FailNow()
	}
	r := setUp(t)
	var checked, compared, skipped []string
	for _, b := range blocks {
		switch {
		case b.lang != "sh" && b.lang != "go":
			continue
		case strings.HasPrefix(b.opts, "no-check"):
			skipped = append(skipped, fmt.Sprintf("%s  %s  (%s)", b, b.first(), strings.TrimSpace(strings.TrimPrefix(b.opts, "no-check:"))))
			continue
		}
		got, err := r.run(t, b)
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		line := fmt.Sprintf("%s  %s", b, b.first())
		if b.output != nil {
			if ok, why := same(got, b.output); !ok {
				t.Errorf("%s printed something else than %s shows %s\ngot:\n%s\nwant:\n%s", b, b.output, why, got, b.output.body)
			}
			compared = append(compared, line+"  (output compared with "+b.output.String()+")")
			continue
		}
		checked = append(checked, line)
	}
	t.Logf("blocks run, output compared (%d):\n  %s", len(compared), strings.Join(compared, "\n  "))
	t.Logf("blocks run, exit status checked (%d):\n  %s", len(checked), strings.Join(checked, "\n  "))
	t.Logf("no-check blocks (%d):\n  %s", len(skipped), strings.Join(skipped, "\n  "))
}
