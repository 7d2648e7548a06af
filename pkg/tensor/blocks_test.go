package tensor

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// TestDecodeBlocks decodes hand-made blocks of each new type and checks
// values worked out by hand from ggml's block layouts (ggml-common.h):
// which bytes and bits a value takes its code, high bit, scale and min
// from.
func TestDecodeBlocks(t *testing.T) {
	h := func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, F32ToF16(v)) }
	cases := []struct {
		name string
		t    DType
		make func(b []byte)
		want map[int]float32 // value index → value
	}{
		{"Q4_1 low and high nibble", Q4_1, func(b []byte) {
			h(b, 0.5)
			h(b[2:], -1)
			b[4] = 0x3a // value 0: 10, value 16: 3
		}, map[int]float32{0: 0.5*10 - 1, 16: 0.5*3 - 1, 1: -1}},
		{"Q5_0 fifth bits from qh", Q5_0, func(b []byte) {
			h(b, 2)
			binary.LittleEndian.PutUint32(b[2:], 1) // value 0's fifth bit
			b[6] = 0x57                             // value 0: 7, value 16: 5
		}, map[int]float32{0: 2 * (7 + 16 - 16), 16: 2 * (5 - 16), 1: 2 * -16}},
		{"Q5_1 last value", Q5_1, func(b []byte) {
			h(b, 1)
			h(b[2:], 0.25)
			binary.LittleEndian.PutUint32(b[4:], 1<<31)
			b[8+15] = 0xf0 // value 15: 0, value 31: 15 (+16)
		}, map[int]float32{31: 31.25, 15: 0.25}},
		{"IQ4_NL codes", IQ4_NL, func(b []byte) {
			h(b, 0.5)
			b[2+2] = 0x0f // value 2: code 15 (113), value 18: code 0 (-127)
		}, map[int]float32{2: 56.5, 18: -63.5, 0: -63.5}},
		{"MXFP4 codes and E8M0 scale", MXFP4, func(b []byte) {
			b[0] = 127    // 2^-1
			b[1+2] = 0x9c // value 2: code 12 (-4, doubled -2), value 18: code 9 (-1, doubled -0.5)
			b[1+3] = 0x07 // value 3: code 7 (12, doubled 6)
		}, map[int]float32{2: -2, 18: -0.5, 3: 6, 0: 0}},
		{"Q2_K scales, mins and shifts", Q2_K, func(b []byte) {
			b[0] = 0x23 // sub-block 0: scale 3, min 2
			b[2] = 0x01 // sub-block 2 (values 32…47): scale 1, min 0
			b[1] = 0x10 // sub-block 1 (values 16…31): scale 0, min 1
			b[16] = 0b11_10_01_10
			h(b[80:], 1)
			h(b[82:], 0.5)
		}, map[int]float32{0: 3*2 - 0.5*2, 32: 1 * 1, 64: 0, 16: -0.5, 96: 0}},
		{"Q3_K signed six-bit scales and high bits", Q3_K, func(b []byte) {
			// scale 0: 34 → 2 (low nibble byte 0, bits 0-1 of byte 8)
			b[96+0], b[96+8] = 0x2, 0x2
			// scale 12 (values 192…207): 53 → 21 (high nibble of byte 4, bits 6-7 of byte 8)
			b[96+4] = 0x50
			b[96+8] |= 0b11 << 6
			b[0] = 1 // value 0: high bit set
			b[32+0] = 0b01
			b[32+1] = 0b11 // value 1: 3, high bit clear → 3-4
			// value 200 (second half, shift 4, l = 8): low bits 3, high bit (bit 6 of hmask[8]) set
			b[32+32+8] = 0b11 << 4
			b[8] = 1 << 6
			h(b[108:], 1)
		}, map[int]float32{0: 2, 1: -2, 200: 21 * 3, 2: 2 * -4}},
		{"Q5_K scales, mins and fifth bits", Q5_K, func(b []byte) {
			h(b, 1)
			h(b[2:], 1)
			b[4+0], b[4+4] = 2, 1 // pair 0 low: scale 2, min 1
			b[4+9] = 0x13         // sub-block 5: scale 3 | 16 (below), min 1
			b[4+1] = 0b01 << 6
			b[48+0] = 0x0f // value 0: 15
			b[16+0] = 1    // value 0's fifth bit
			b[48+64] = 0x40
			b[16+0] |= 1 << 5 // value 160 (pair 2, high nibbles): fifth bit
		}, map[int]float32{0: 2*31 - 1, 160: 19*20 - 1}},
		{"IQ4_XS scales", IQ4_XS, func(b []byte) {
			h(b, 0.25)
			binary.LittleEndian.PutUint16(b[2:], 0b10<<6) // sub-block 3: high bits 2
			b[4+1] = 0x70                                 // sub-block 3: low bits 7
			b[8+48] = 0x08                                // value 96: code 8 (1), value 112: code 0 (-127)
		}, map[int]float32{96: 0.25 * 7 * 1, 112: 0.25 * 7 * -127, 0: 0.25 * -32 * -127}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			blk := make([]byte, c.t.BlockBytes())
			c.make(blk)
			y := make([]float32, c.t.BlockSize())
			Dequantize(c.t, y, blk, len(y))
			for i, want := range c.want {
				if y[i] != want {
					t.Errorf("%s value %d = %g, want %g", c.t, i, y[i], want)
				}
			}
		})
	}
}

// TestQuantizeLayouts checks that each new type's quantiser stores what
// its decoder reads: a row quantised and decoded is within the type's
// step of the original, value by value.
func TestQuantizeLayouts(t *testing.T) {
	for _, dt := range []DType{Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, Q2_K, Q3_K, Q5_K, IQ4_XS} {
		t.Run(fmt.Sprint(dt), func(t *testing.T) {
			x := make([]float32, 512)
			for i := range x {
				x[i] = float32(i%37-18) / 18 // -1…1 in steps of 1/18
			}
			y := make([]float32, len(x))
			Dequantize(dt, y, Quantize(dt, nil, x), len(x))
			// The coarsest grids: Q2_K 4 levels of a sub-block's range
			// (2/3), Q3_K -4…3 times max/4 (the positive end clipped to
			// 3/4), MXFP4's E2M1 steps (1 between 2 and 4 times
			// 2^(e-1)), the IQ4 codes -127…113 (the end opposite the
			// scale's sign 113/127); the others 16 or 32 levels.
			bound := map[DType]float32{Q2_K: 0.34, Q3_K: 0.26, MXFP4: 0.26, IQ4_NL: 0.12, IQ4_XS: 0.12}[dt]
			if bound == 0 {
				bound = 0.1
			}
			for i := range x {
				if d := abs32(x[i] - y[i]); d > bound {
					t.Fatalf("value %d: %g decoded as %g", i, x[i], y[i])
				}
			}
		})
	}
}
