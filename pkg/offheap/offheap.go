// Package offheap holds memory outside the Go heap: anonymous mappings,
// zeroed, whose pages become resident only as they are first written.
// The garbage collector neither scans them nor counts them toward its
// next goal, so a role's weights and KV cache cost their bytes and no
// more: on the heap, at a GOGC of 10, they would keep a tenth again
// resident.
package offheap

import (
	"fmt"
	"runtime"
	"syscall"
)

// Map returns n bytes of zeroed memory outside the Go heap. Unmap
// returns them.
func Map(n int) ([]byte, error) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("offheap: map %d bytes: %w", n, err)
	}
	return b, nil
}

// Unmap returns memory from Map to the OS; b must not be used after.
func Unmap(b []byte) { _ = syscall.Munmap(b) }

// Hold owns memory from Alloc: the memory goes back to the OS once no
// pointer to its Hold is left. Whoever reads the memory keeps the Hold
// reachable until the last read (a field beside the slice, or
// runtime.KeepAlive).
type Hold struct {
	n int // the bytes held; also keeps Hold out of the tiny allocator
	_ int
}

// Alloc returns n zeroed bytes outside the Go heap and their Hold. Where
// the OS refuses a mapping it falls back to the heap (and a nil Hold).
func Alloc(n int) ([]byte, *Hold) {
	if n == 0 {
		return nil, nil
	}
	b, err := Map(n)
	if err != nil {
		return make([]byte, n), nil
	}
	h := &Hold{n: n}
	runtime.AddCleanup(h, Unmap, b)
	return b, h
}
