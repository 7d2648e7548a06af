package offheap

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestAllocIsOffHeapAndZeroed(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b, h := Alloc(64 << 20)
	if h == nil {
		t.Fatal("no mapping: the OS refused 64 MiB")
	}
	for i := range b {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want zeroed memory", i, b[i])
		}
		b[i] = byte(i)
	}
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Errorf("64 MiB written grew the Go heap by %d bytes", grew)
	}
	runtime.KeepAlive(h)
}

// TestCleanupUnmaps checks that memory is given back once its Hold is
// unreachable: its range leaves the process's mappings.
func TestCleanupUnmaps(t *testing.T) {
	var addr uintptr
	func() {
		b, h := Alloc(1 << 20)
		if h == nil {
			t.Fatal("no mapping")
		}
		addr = uintptr(unsafe.Pointer(&b[0]))
	}()
	if !mapped(t, addr) {
		t.Fatalf("%#x is not in /proc/self/maps after Alloc", addr)
	}
	for range 100 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if !mapped(t, addr) {
			return
		}
	}
	t.Fatal("the memory stayed mapped after its Hold became unreachable")
}

// mapped reports whether addr lies in one of the process's mappings.
func mapped(t *testing.T, addr uintptr) bool {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps on this system")
	}
	for line := range strings.Lines(string(maps)) {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && lo <= addr && addr < hi {
			return true
		}
	}
	return false
}
