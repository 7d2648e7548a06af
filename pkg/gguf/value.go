// Package gguf reads and writes GGUF files, the model format of the
// llama.cpp ecosystem (versions 2 and 3): typed metadata, tensor infos and
// the aligned data section, in one file or split into parts as llama.cpp's
// gguf-split writes them. Tensors are reached by exact byte-range reads,
// each in its own part, or through read-only memory maps, and a merged
// 3-D expert tensor can be read one expert at a time. It does not
// interpret what the tensors mean, nor fetch files: a Source does.
package gguf

import (
	"fmt"
	"math"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of the GGUF specification.
const (
	Uint8   ValueType = 0
	Int8    ValueType = 1
	Uint16  ValueType = 2
	Int16   ValueType = 3
	Uint32  ValueType = 4
	Int32   ValueType = 5
	Float32 ValueType = 6
	Bool    ValueType = 7
	String  ValueType = 8
	Array   ValueType = 9
	Uint64  ValueType = 10
	Int64   ValueType = 11
	Float64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// size is the encoded size of a scalar of type t (0 for string and array).
func (t ValueType) size() int {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16:
		return 2
	case Uint32, Int32, Float32:
		return 4
	case Uint64, Int64, Float64:
		return 8
	}
	return 0
}

// Value is one metadata value. Scalars hold the Go type of the same name
// (uint8 … float64, bool, string). Arrays hold a typed slice ([]uint8 …
// []float64, []bool, []string) or, for arrays of arrays, []Value.
type Value struct {
	Type ValueType
	Elem ValueType // element type, for arrays
	V    any
}

// Scalar constructors used when writing files.
func U32(v uint32) Value     { return Value{Type: Uint32, V: v} }
func I32(v int32) Value      { return Value{Type: Int32, V: v} }
func U64(v uint64) Value     { return Value{Type: Uint64, V: v} }
func F32(v float32) Value    { return Value{Type: Float32, V: v} }
func Str(v string) Value     { return Value{Type: String, V: v} }
func BoolV(v bool) Value     { return Value{Type: Bool, V: v} }
func Strs(v []string) Value  { return Value{Type: Array, Elem: String, V: v} }
func F32s(v []float32) Value { return Value{Type: Array, Elem: Float32, V: v} }
func I32s(v []int32) Value   { return Value{Type: Array, Elem: Int32, V: v} }

// Int returns an integer value of any integer type, or false.
func (v Value) Int() (int64, bool) {
	switch x := v.V.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// Float returns a float value (of either float type, or an integer), or false.
func (v Value) Float() (float64, bool) {
	switch x := v.V.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.Int(); ok {
		return float64(i), true
	}
	return 0, false
}

// Len is the number of elements of an array value (0 for scalars).
func (v Value) Len() int {
	switch x := v.V.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []Value:
		return len(x)
	}
	return 0
}

// String formats the value for humans; long arrays are abbreviated.
func (v Value) String() string {
	if v.Type == Array {
		return fmt.Sprintf("[%s × %d]", v.Elem, v.Len())
	}
	if s, ok := v.V.(string); ok {
		if len(s) > 60 {
			s = s[:57] + "..."
		}
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v.V)
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}
