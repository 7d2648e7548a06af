package switchyardv1

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Values of E4M3 codes as the OCP 8-bit floating point specification
// tabulates them.
func TestFP8KnownCodes(t *testing.T) {
	cases := []struct {
		code uint8
		want float64
	}{
		{0x00, 0}, {0x01, 1.0 / 512}, {0x07, 7.0 / 512}, {0x08, 1.0 / 64}, {0x30, 0.5}, {0x38, 1}, {0x3c, 1.5},
		{0x40, 2}, {0x46, 3.5}, {0x4c, 6}, {0x77, 240}, {0x78, 256}, {0x7e, 448}, {0xb8, -1}, {0xfe, -448},
	}
	for _, c := range cases {
		if got := fp8Values[c.code]; float64(got) != c.want {
			t.Errorf("code %#02x is %v, want %v", c.code, got, c.want)
		}
		if got := toFP8(float32(c.want)); got != c.code {
			t.Errorf("%v encodes as %#02x, want %#02x", c.want, got, c.code)
		}
	}
	for _, c := range []uint8{0x7f, 0xff} {
		if v := fp8Values[c]; v == v {
			t.Errorf("code %#02x is %v, want NaN", c, v)
		}
	}
	if c := toFP8(float32(math.Copysign(0, -1))); c != 0x80 {
		t.Errorf("-0 encodes as %#02x, want 0x80", c)
	}
}

// Every finite code decodes and encodes back to itself; a value between
// two neighbours goes to the nearer, a tie to the one with an even
// mantissa; past 448 saturates.
func TestFP8Rounding(t *testing.T) {
	for c := range 256 {
		v := fp8Values[c]
		if v != v {
			continue
		}
		if got := toFP8(v); got != uint8(c) {
			t.Errorf("code %#02x (%v) encodes back as %#02x", c, v, got)
		}
	}
	for c := 0; c < 0x7e; c++ { // positive neighbours c, c+1
		lo, hi := float64(fp8Values[c]), float64(fp8Values[c+1])
		mid := (lo + hi) / 2 // exact in float32: a few bits
		even := uint8(c)
		if c&1 != 0 {
			even = uint8(c + 1)
		}
		if got := toFP8(float32(mid)); got != even {
			t.Errorf("the tie %v between %#02x and %#02x encodes as %#02x, want %#02x", mid, c, c+1, got, even)
		}
		if got := toFP8(float32(lo + (hi-lo)*0.3)); got != uint8(c) {
			t.Errorf("%v, nearer %#02x, encodes as %#02x", lo+(hi-lo)*0.3, c, got)
		}
		if got := toFP8(float32(lo + (hi-lo)*0.7)); got != uint8(c+1) {
			t.Errorf("%v, nearer %#02x, encodes as %#02x", lo+(hi-lo)*0.7, c+1, got)
		}
	}
	for _, v := range []float32{449, 464, 480, 1e6, float32(math.Inf(1))} {
		if got := toFP8(v); got != 0x7e {
			t.Errorf("%v encodes as %#02x, want 448 (0x7e)", v, got)
		}
		if got := toFP8(-v); got != 0xfe {
			t.Errorf("%v encodes as %#02x, want -448 (0xfe)", -v, got)
		}
	}
}

// Rows round trip within E4M3's precision: each value within 1/16 of
// itself (half a unit in the last of three mantissa bits), or, below the
// normal range, within half the smallest step of the row's scale.
func TestFP8Rows(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const rows, n = 5, 300
	x := make([]float32, rows*n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Pow(10, float64(i/n)-2)) // rows of growing size
	}
	x[7] = 0
	b := EncodeRowsOf(nil, Encoding_ENCODING_FP8_E4M3, x, n)
	if len(b) != rows*Encoding_ENCODING_FP8_E4M3.RowBytes(n) || Encoding_ENCODING_FP8_E4M3.RowBytes(n) != n+4 {
		t.Fatalf("%d bytes for %d rows of %d", len(b), rows, n)
	}
	y, err := DecodeRowsOf(nil, b, Encoding_ENCODING_FP8_E4M3, rows, n)
	if err != nil {
		t.Fatal(err)
	}
	for row := range rows {
		var mx float64
		for _, v := range x[row*n : (row+1)*n] {
			mx = math.Max(mx, math.Abs(float64(v)))
		}
		scale := mx / 448
		for i := row * n; i < (row+1)*n; i++ {
			d := math.Abs(float64(x[i]) - float64(y[i]))
			if d > math.Max(math.Abs(float64(x[i]))/16, scale/1024)*1.0001 {
				t.Fatalf("row %d value %d: %v decoded as %v (row's largest %v)", row, i, x[i], y[i], mx)
			}
		}
	}
	if y[7] != 0 {
		t.Errorf("0 decoded as %v", y[7])
	}
	zero, err := DecodeRows(EncodeRows(nil, Encoding_ENCODING_FP8_E4M3, make([]float32, 4)), Encoding_ENCODING_FP8_E4M3, 4)
	if err != nil || zero[0] != 0 || zero[3] != 0 {
		t.Errorf("a row of zeros decoded as %v, %v", zero, err)
	}
	if _, err := DecodeRowsOf(nil, b[:len(b)-1], Encoding_ENCODING_FP8_E4M3, rows, n); err == nil {
		t.Error("a short FP8 buffer was decoded")
	}
	if _, err := DecodeRows(b, Encoding_ENCODING_FP8_E4M3, n); err == nil {
		t.Error("five rows decoded as one")
	}
}
