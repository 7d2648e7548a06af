// Package httpfile reads a remote file through HTTP Range requests as an
// io.ReaderAt, keeping what it has fetched in a local cache keyed by the
// URL and the server's validator (ETag or Last-Modified), so that a reader
// fetches only the byte ranges it reads, once. Works with any server that
// honours Range.
package httpfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrRange is returned when the server does not serve byte ranges.
var ErrRange = errors.New("httpfile: the server does not honour Range requests")

// File is a remote file with a local cache. Safe for concurrent use.
type File struct {
	url       string
	size      int64
	validator string
	client    *http.Client
	path      string // the sparse cache file; its ranges are in path+".ranges"

	mu     sync.Mutex
	f      *os.File
	have   []span // fetched ranges, sorted, disjoint
	fetchd int64  // bytes fetched from the server by this File
}

type span struct{ Start, End int64 } // [Start, End)

// IsURL reports whether s names an http or https resource.
func IsURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// Open asks the server for the file's size and validator and opens (or
// creates) its cache in dir. client nil means http.DefaultClient.
func Open(ctx context.Context, url, dir string, client *http.Client) (*File, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("httpfile: %w", err)
	}
	req.Header.Set("Range", "bytes=0-0")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("httpfile: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		if resp.StatusCode == http.StatusOK {
			return nil, fmt.Errorf("%w (%s answered 200 to a range request)", ErrRange, url)
		}
		return nil, fmt.Errorf("httpfile: %s: %s", url, resp.Status)
	}
	_, _, total, err := contentRange(resp.Header.Get("Content-Range"))
	if err != nil || total <= 0 {
		return nil, fmt.Errorf("httpfile: %s: bad Content-Range %q", url, resp.Header.Get("Content-Range"))
	}
	validator := resp.Header.Get("ETag")
	if validator == "" {
		validator = resp.Header.Get("Last-Modified")
	}
	key := sha256.Sum256([]byte(url + "\n" + validator + "\n" + strconv.FormatInt(total, 10)))
	file := &File{url: url, size: total, validator: validator, client: client,
		path: filepath.Join(dir, hex.EncodeToString(key[:16])+".part")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("httpfile: cache: %w", err)
	}
	if file.f, err = os.OpenFile(file.path, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("httpfile: cache: %w", err)
	}
	if err := file.f.Truncate(total); err != nil {
		file.f.Close()
		return nil, fmt.Errorf("httpfile: cache: %w", err)
	}
	if b, err := os.ReadFile(file.path + ".ranges"); err == nil {
		json.Unmarshal(b, &file.have)
	}
	return file, nil
}

// Opener returns a function that opens URLs with Open, their caches in
// dir: a source of files by name, as gguf.Options.Source takes one, so
// that a model split into parts is fetched part by part. Each file it
// returns is an io.Closer.
func Opener(ctx context.Context, dir string, client *http.Client) func(url string) (io.ReaderAt, int64, error) {
	return func(url string) (io.ReaderAt, int64, error) {
		f, err := Open(ctx, url, dir, client)
		if err != nil {
			return nil, 0, err
		}
		return f, f.Size(), nil
	}
}

// contentRange parses "bytes START-END/TOTAL".
func contentRange(s string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	r, t, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(r, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil {
		return
	}
	if end, err = strconv.ParseInt(b, 10, 64); err != nil {
		return
	}
	total, err = strconv.ParseInt(t, 10, 64)
	return
}

// Size is the remote file's size.
func (f *File) Size() int64 { return f.size }

// Fetched is how many bytes this File has fetched from the server.
func (f *File) Fetched() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetchd
}

// missing returns the parts of [start, end) not in the cache. Must hold f.mu.
func (f *File) missing(start, end int64) []span {
	var out []span
	pos := start
	for _, h := range f.have {
		if h.End <= pos || h.Start >= end {
			continue
		}
		if h.Start > pos {
			out = append(out, span{pos, h.Start})
		}
		pos = max(pos, h.End)
	}
	if pos < end {
		out = append(out, span{pos, end})
	}
	return out
}

// add records [s.Start, s.End) as cached. Must hold f.mu.
func (f *File) add(s span) {
	f.have = append(f.have, s)
	slices.SortFunc(f.have, func(a, b span) int { return int(a.Start - b.Start) })
	merged := f.have[:1]
	for _, h := range f.have[1:] {
		last := &merged[len(merged)-1]
		if h.Start <= last.End {
			last.End = max(last.End, h.End)
		} else {
			merged = append(merged, h)
		}
	}
	f.have = merged
}

// ReadAt reads from the cache, fetching the missing ranges first.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= f.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), f.size)
	f.mu.Lock()
	defer f.mu.Unlock()
	fetched := false
	for _, m := range f.missing(off, end) {
		if err := f.fetch(m); err != nil {
			return 0, err
		}
		fetched = true
	}
	if fetched {
		b, _ := json.Marshal(f.have)
		tmp := f.path + ".ranges.tmp"
		if os.WriteFile(tmp, b, 0o644) == nil {
			os.Rename(tmp, f.path+".ranges")
		}
	}
	n, err := f.f.ReadAt(p[:end-off], off)
	if err == nil && end-off < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// fetch downloads one range into the cache file. Must hold f.mu.
func (f *File) fetch(s span) error {
	req, err := http.NewRequest(http.MethodGet, f.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", s.Start, s.End-1))
	if f.validator != "" {
		req.Header.Set("If-Range", f.validator)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("httpfile: fetch [%d, %d): %w", s.Start, s.End, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("httpfile: fetch [%d, %d): %s (the file may have changed on the server)", s.Start, s.End, resp.Status)
	}
	a, b, total, err := contentRange(resp.Header.Get("Content-Range"))
	if err != nil || a != s.Start || b != s.End-1 || total != f.size {
		return fmt.Errorf("httpfile: fetch [%d, %d): the server answered range %q", s.Start, s.End, resp.Header.Get("Content-Range"))
	}
	buf := make([]byte, s.End-s.Start)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return fmt.Errorf("httpfile: fetch [%d, %d): %w", s.Start, s.End, err)
	}
	if _, err := f.f.WriteAt(buf, s.Start); err != nil {
		return fmt.Errorf("httpfile: cache: %w", err)
	}
	f.fetchd += int64(len(buf))
	f.add(s)
	return nil
}

// Close closes the cache file.
func (f *File) Close() error { return f.f.Close() }
