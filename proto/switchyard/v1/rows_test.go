package switchyardv1

import (
	"slices"
	"testing"
)

// F32View shares the bytes of aligned float32 rows and declines anything
// else: other encodings, misaligned bytes, a length not a multiple of 4.
func TestF32View(t *testing.T) {
	x := []float32{1.5, -2, 3.25, 0}
	b := EncodeRows(make([]byte, 0, 64), Encoding_ENCODING_F32, x)
	v, ok := F32View(b, Encoding_ENCODING_F32)
	if !ok || !slices.Equal(v, x) {
		t.Fatalf("view %v, %v; want %v", v, ok, x)
	}
	v[1] = 7 // a view, not a copy
	if got, _ := DecodeRowsInto(nil, b, Encoding_ENCODING_F32, len(x)); got[1] != 7 {
		t.Fatalf("writing the view left the bytes at %v", got)
	}
	if _, ok := F32View(b, Encoding_ENCODING_UNSPECIFIED); !ok {
		t.Error("unspecified is float32 and was declined")
	}
	shifted := append(make([]byte, 1, 64), b...)[1:] // one byte off the allocation's alignment
	for _, c := range []struct {
		b []byte
		e Encoding
	}{{b, Encoding_ENCODING_F16}, {b, Encoding_ENCODING_BF16}, {shifted, Encoding_ENCODING_F32}, {b[:5], Encoding_ENCODING_F32}} {
		if _, ok := F32View(c.b, c.e); ok {
			t.Errorf("%d bytes of %s at %p: viewed", len(c.b), c.e, &c.b[0])
		}
	}
}
