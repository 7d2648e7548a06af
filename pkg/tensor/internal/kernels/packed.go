package kernels

import (
	"encoding/binary"
	"math"
)

// The row-interleaved layouts of Q5_K and IQ4_XS for the VNNI kernels,
// 16 rows a group, one record a group and super-block. Their kernels keep
// ggml's eight integer lanes per row (the values at offsets 4i…4i+3 of
// each 32-value chunk): slice i of a sub-block holds those four bytes of
// each of the 16 rows, so one VPDPBUSD with the token's four activations
// broadcast gives lane i of all 16 rows.

// R16Q5K: d and dmin, scales and mins, quants, fifth bits.
const R16Q5K = 4*R16 + 4*R16 + 8*R16 + 8*R16 + 4*8*64 + 8*64

// PackQ5_KR16 appends the rows × nb Q5_K super-blocks of w (rows
// contiguous) for the VNNI Q5_K kernels: groups of 16 rows (the last
// padded with zero rows), and per group and super-block the rows' d and
// dmin as float32, their 8 scales as bytes (scale j of row r at 16j+r,
// doubled for even j, as the kernels take them),
// their 8 mins as bytes in pairs (mins 2i and 2i+1 of row r at 32i+2r,
// so that a row's pair widens to one dword of two words), then for each
// pair of sub-blocks 8 slices of 64 bytes, slice s holding bytes 4s…4s+3
// of each row's 32 quant bytes (low nibbles the even sub-block, high the
// odd), then 8 slices of the qh bytes alike (bit j of a qh byte the fifth
// bit of sub-block j's value).
func PackQ5_KR16(dst, w []byte, rows, nb int) []byte {
	return packR16(dst, w, rows, nb, 176, R16Q5K, func(rec, blk []byte, r int) {
		binary.LittleEndian.PutUint32(rec[4*r:], math.Float32bits(f16[le16(blk)]))
		binary.LittleEndian.PutUint32(rec[64+4*r:], math.Float32bits(f16[le16(blk[2:])]))
		for j := range 8 {
			sc, m := scaleMinK4(j, blk[4:16])
			if j%2 == 0 {
				sc *= 2 // under 128
			}
			rec[128+16*j+r], rec[256+32*(j/2)+2*r+j%2] = sc, m
		}
		for s := range 8 {
			for pr := range 4 {
				copy(rec[384+512*pr+64*s+4*r:][:4], blk[48+32*pr+4*s:])
			}
			copy(rec[2432+64*s+4*r:][:4], blk[16+4*s:])
		}
	})
}

// R16IQ4XS: d, scales (int16), codes.
const R16IQ4XS = 4*R16 + 8*2*R16 + 8*4*64

// PackIQ4_XSR16 appends the rows × nb IQ4_XS super-blocks of w (rows
// contiguous) for the VNNI IQ4_XS kernels: groups of 16 rows (the last
// padded with zero rows), and per group and super-block the rows' d as
// float32, their 8 scales less 32 as int16 (scale j of row r at
// 64+32j+2r), then for each sub-block 4 slices of 64 bytes, slice q
// holding code bytes 4q…4q+3 of each row's 16 (low nibbles values
// 4q…4q+3 of the sub-block, lane q; high nibbles values 16+4q…, lane
// q+4).
func PackIQ4_XSR16(dst, w []byte, rows, nb int) []byte {
	return packR16(dst, w, rows, nb, 136, R16IQ4XS, func(rec, blk []byte, r int) {
		binary.LittleEndian.PutUint32(rec[4*r:], math.Float32bits(f16[le16(blk)]))
		_, sc := decodeIQ4_XS(blk)
		for j := range 8 {
			binary.LittleEndian.PutUint16(rec[64+32*j+2*r:], uint16(int16(sc[2*j])))
		}
		for j := range 8 {
			for q := range 4 {
				copy(rec[320+256*j+64*q+4*r:][:4], blk[8+16*j+4*q:])
			}
		}
	})
}
