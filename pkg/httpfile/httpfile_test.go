package httpfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server serves data with Range support and counts the bytes it sends.
func server(t *testing.T, data []byte, ranges bool) (*httptest.Server, *atomic.Int64) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countWriter{ResponseWriter: w, n: &sent}
		if !ranges {
			cw.Write(data)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(cw, r, "model.gguf", time.Unix(1, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv, &sent
}

type countWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func TestReadsOnlyWhatItNeedsAndCaches(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	srv, sent := server(t, data, true)
	dir := t.TempDir()
	f, err := Open(t.Context(), srv.URL, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(data)) {
		t.Fatalf("size %d", f.Size())
	}
	for _, r := range [][2]int{{100, 5000}, {300000, 40000}, {4000, 2000}, {1<<20 - 10, 10}} {
		p := make([]byte, r[1])
		if _, err := f.ReadAt(p, int64(r[0])); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(p, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("bytes at %d differ", r[0])
		}
	}
	// [100, 5100) and [300000, 340000), then only the part of [4000, 6000)
	// not yet cached, then the last 10 bytes.
	if got, want := f.Fetched(), int64(5000+40000+900+10); got != want {
		t.Errorf("fetched %d bytes, want %d", got, want)
	}
	f.Close()
	before := sent.Load()
	g, err := Open(t.Context(), srv.URL, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5000)
	g.ReadAt(p, 100)
	if !bytes.Equal(p, data[100:5100]) || g.Fetched() != 0 || sent.Load()-before > 10 {
		t.Errorf("second open fetched %d bytes (server sent %d) for cached data", g.Fetched(), sent.Load()-before)
	}
	g.Close()
}

func TestServerWithoutRanges(t *testing.T) {
	srv, _ := server(t, []byte("hello"), false)
	if _, err := Open(t.Context(), srv.URL, t.TempDir(), nil); !errors.Is(err, ErrRange) {
		t.Errorf("got %v, want ErrRange", err)
	}
}

// TestOpener opens files by URL as a source of named files does, each
// with its own size and cache, and fails on a URL the server lacks.
func TestOpener(t *testing.T) {
	files := map[string][]byte{"/m-00001-of-00002.gguf": []byte("first part"), "/m-00002-of-00002.gguf": []byte("the second, longer part")}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Unix(1, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	open := Opener(t.Context(), t.TempDir(), nil)
	for path, want := range files {
		r, size, err := open(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, size)
		if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %q (%v), want %q", path, got, err, want)
		}
		r.(io.Closer).Close()
	}
	if _, _, err := open(srv.URL + "/m-00003-of-00002.gguf"); err == nil || !strings.Contains(err.Error(), "m-00003-of-00002.gguf: 404") {
		t.Errorf("missing file: got %v, want an error naming it and the status", err)
	}
}
