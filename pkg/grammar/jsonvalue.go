package grammar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// jval is a JSON value that keeps its objects' key order (a schema's
// properties are generated in the order written) and its numbers' text.
type jval struct {
	kind jkind
	b    bool
	text string // number: as written; string: the value
	arr  []*jval
	keys []string
	vals []*jval
}

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

func (k jkind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// parseJSON reads one JSON value, with objects and arrays nested at most
// maxDepth deep and no duplicate keys.
func parseJSON(data []byte, maxDepth int) (*jval, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := readJSON(d, 0, maxDepth)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON value", ErrSyntax)
	}
	return v, nil
}

func readJSON(d *json.Decoder, depth, maxDepth int) (*jval, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	switch t := tok.(type) {
	case nil:
		return &jval{kind: jNull}, nil
	case bool:
		return &jval{kind: jBool, b: t}, nil
	case json.Number:
		return &jval{kind: jNumber, text: string(t)}, nil
	case string:
		return &jval{kind: jString, text: t}, nil
	case json.Delim:
		if depth >= maxDepth {
			return nil, fmt.Errorf("%w: JSON nested deeper than %d", ErrLimit, maxDepth)
		}
		v := &jval{kind: jArray}
		if t == '{' {
			v.kind = jObject
		}
		for d.More() {
			if v.kind == jObject {
				k, err := d.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
				}
				key := k.(string)
				if v.get(key) != nil {
					return nil, fmt.Errorf("%w: duplicate key %q", ErrSyntax, key)
				}
				v.keys = append(v.keys, key)
			}
			x, err := readJSON(d, depth+1, maxDepth)
			if err != nil {
				return nil, err
			}
			if v.kind == jObject {
				v.vals = append(v.vals, x)
			} else {
				v.arr = append(v.arr, x)
			}
		}
		if _, err := d.Token(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("%w: unexpected %v", ErrSyntax, tok)
}

// get returns an object's member, or nil.
func (v *jval) get(key string) *jval {
	if v == nil || v.kind != jObject {
		return nil
	}
	for i, k := range v.keys {
		if k == key {
			return v.vals[i]
		}
	}
	return nil
}

// compact writes v as compact JSON, keys in their order, strings escaped
// as encoding/json does but without HTML escapes.
func (v *jval) compact() string {
	var sb strings.Builder
	v.write(&sb)
	return sb.String()
}

func (v *jval) write(sb *strings.Builder) {
	switch v.kind {
	case jNull:
		sb.WriteString("null")
	case jBool:
		fmt.Fprint(sb, v.b)
	case jNumber:
		sb.WriteString(v.text)
	case jString:
		sb.WriteString(quote(v.text))
	case jArray:
		sb.WriteByte('[')
		for i, x := range v.arr {
			if i > 0 {
				sb.WriteByte(',')
			}
			x.write(sb)
		}
		sb.WriteByte(']')
	case jObject:
		sb.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(quote(k))
			sb.WriteByte(':')
			v.vals[i].write(sb)
		}
		sb.WriteByte('}')
	}
}

// quote is s as a JSON string.
func quote(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}
