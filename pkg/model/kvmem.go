package model

import "syscall"

// reserve maps n bytes of anonymous memory outside the Go heap. The OS
// provides each page when it is first written, so the pool is resident
// only as far as it has been used.
func reserve(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// unreserve returns memory from reserve to the OS.
func unreserve(b []byte) { syscall.Munmap(b) }
