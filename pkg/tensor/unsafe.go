package tensor

import "unsafe"

// asF32 views little-endian bytes as float32s (amd64 and arm64 are
// little-endian; buffers come from make or mmap, so they are aligned).
func asF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

func asU16(b []byte) []uint16 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&b[0])), len(b)/2)
}

// F32Bytes views float32s as their little-endian bytes, without copying.
func F32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// BytesF32 views little-endian bytes as float32s, without copying; len(b)
// must be a multiple of 4 and b aligned to 4 bytes.
func BytesF32(b []byte) []float32 { return asF32(b) }
