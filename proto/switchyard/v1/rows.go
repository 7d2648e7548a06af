package switchyardv1

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"google.golang.org/grpc"

	"github.com/switchyard-llm/switchyard/pkg/tensor"
)

// MaxMessageBytes is the largest ExpertService message either side
// accepts. gRPC's default of 4 MiB is one step of 256 rows of a
// 4096-wide model; the node's own limits on rows and pairs bound a
// request long before this.
const MaxMessageBytes = 1 << 30

// windowBytes is the HTTP/2 flow-control window of ExpertService
// connections and streams. Fixing it turns off gRPC's bandwidth-delay
// estimation, which otherwise pings the peer on every few messages — a
// frame each way, and allocations, per expert call on a decode step.
const windowBytes = 16 << 20

// ServerOptions raise a server's receive limit to MaxMessageBytes, fix
// its flow-control windows and decode ForwardStream requests into reused
// buffers (see codec).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.InitialWindowSize(windowBytes), grpc.InitialConnWindowSize(windowBytes), codecServerOption()}
}

// DialOptions raise a client's receive limit to MaxMessageBytes, fix its
// flow-control windows and decode ForwardStream answers into reused
// buffers (see codec).
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), codecCallOption()),
		grpc.WithInitialWindowSize(windowBytes), grpc.WithInitialConnWindowSize(windowBytes)}
}

// BytesPerValue is the size of one activation value in encoding e, or 0
// for an unknown encoding. FP8 rows also carry a 4-byte scale: see
// RowBytes.
func (e Encoding) BytesPerValue() int {
	switch e {
	case Encoding_ENCODING_UNSPECIFIED, Encoding_ENCODING_F32:
		return 4
	case Encoding_ENCODING_F16, Encoding_ENCODING_BF16:
		return 2
	case Encoding_ENCODING_FP8_E4M3:
		return 1
	}
	return 0
}

// RowBytes is the size of one row of n values in encoding e, or 0 for an
// unknown encoding.
func (e Encoding) RowBytes(n int) int {
	if e == Encoding_ENCODING_FP8_E4M3 {
		return 4 + n
	}
	return n * e.BytesPerValue()
}

// EncodeRows writes float32 values in encoding e, appending to dst. For
// FP8, x is one row (it gets one scale); EncodeRowsOf takes several.
func EncodeRows(dst []byte, e Encoding, x []float32) []byte {
	switch e {
	case Encoding_ENCODING_FP8_E4M3:
		dst = appendFP8Row(dst, x)
	case Encoding_ENCODING_F16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, tensor.F32ToF16(v))
		}
	case Encoding_ENCODING_BF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, tensor.F32ToBF16(v))
		}
	default: // float32s are little-endian in memory on every supported CPU
		dst = append(dst, tensor.F32Bytes(x)...)
	}
	return dst
}

// EncodeRowsOf writes x, whole rows of rowLen values, in encoding e.
func EncodeRowsOf(dst []byte, e Encoding, x []float32, rowLen int) []byte {
	if e != Encoding_ENCODING_FP8_E4M3 || rowLen <= 0 {
		return EncodeRows(dst, e, x)
	}
	for i := 0; i+rowLen <= len(x); i += rowLen {
		dst = appendFP8Row(dst, x[i:i+rowLen])
	}
	return dst
}

// F32View returns b, float32 values in encoding e, as those values without
// copying them, when e is F32 (or unspecified) and b is 4-byte aligned;
// ok is false otherwise. A node computes straight from a request's
// activations and into its answer's outputs this way, rather than
// holding a second copy of each.
func F32View(b []byte, e Encoding) (x []float32, ok bool) {
	if e.BytesPerValue() != 4 || len(b)%4 != 0 {
		return nil, false
	}
	if len(b) == 0 {
		return []float32{}, true
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4), true
}

// DecodeRowsOf reads rows rows of rowLen values in encoding e from b,
// which must hold exactly that, into dst's memory when it has the
// capacity.
func DecodeRowsOf(dst []float32, b []byte, e Encoding, rows, rowLen int) ([]float32, error) {
	if e != Encoding_ENCODING_FP8_E4M3 {
		return DecodeRowsInto(dst, b, e, rows*rowLen)
	}
	rb := e.RowBytes(rowLen)
	if rows < 0 || rowLen < 0 || len(b) != rows*rb {
		return nil, fmt.Errorf("%d bytes of %s rows, want %d rows of %d values (%d bytes)", len(b), e, rows, rowLen, rows*rb)
	}
	x := dst[:0]
	if cap(x) < rows*rowLen {
		x = make([]float32, rows*rowLen)
	}
	x = x[:rows*rowLen]
	for r := range rows {
		decodeFP8Row(x[r*rowLen:(r+1)*rowLen], b[r*rb:(r+1)*rb])
	}
	return x, nil
}

// DecodeRows reads n float32 values in encoding e from b, which must hold
// exactly n values (for FP8, one row of n values).
func DecodeRows(b []byte, e Encoding, n int) ([]float32, error) {
	return DecodeRowsInto(nil, b, e, n)
}

// DecodeRowsInto is DecodeRows into dst's memory when it has the capacity.
func DecodeRowsInto(dst []float32, b []byte, e Encoding, n int) ([]float32, error) {
	bpv := e.BytesPerValue()
	if bpv == 0 {
		return nil, fmt.Errorf("unknown encoding %d", e)
	}
	if e == Encoding_ENCODING_FP8_E4M3 {
		return DecodeRowsOf(dst, b, e, 1, n)
	}
	if len(b) != n*bpv {
		return nil, fmt.Errorf("%d bytes of %s rows, want %d values (%d bytes)", len(b), e, n, n*bpv)
	}
	x := dst[:0]
	if cap(x) < n {
		x = make([]float32, n)
	}
	x = x[:n]
	switch bpv {
	case 4:
		copy(tensor.F32Bytes(x), b)
	default:
		conv := tensor.F16ToF32
		if e == Encoding_ENCODING_BF16 {
			conv = tensor.BF16ToF32
		}
		for i := range x {
			x[i] = conv(binary.LittleEndian.Uint16(b[2*i:]))
		}
	}
	return x, nil
}
