package jinja

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ParseJSON reads one JSON value as Python's json.loads does for a chat
// template: objects become dicts in the order of their keys (a repeated
// key keeps its first place and its last value), integers stay integers.
// Values may nest at most MaxValueDepth levels.
func ParseJSON(data []byte) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeJSON(dec, 0)
	if err != nil {
		return Undefined(), err
	}
	if _, err := dec.Token(); err != io.EOF {
		return Undefined(), errors.New("json: more than one value")
	}
	return v, nil
}

func decodeJSON(dec *json.Decoder, depth int) (Value, error) {
	if depth > MaxValueDepth {
		return Undefined(), fmt.Errorf("json: nested deeper than %d levels", MaxValueDepth)
	}
	t, err := dec.Token()
	if err != nil {
		return Undefined(), fmt.Errorf("json: %w", err)
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '[':
			var items []Value
			for dec.More() {
				v, err := decodeJSON(dec, depth+1)
				if err != nil {
					return Undefined(), err
				}
				items = append(items, v)
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), fmt.Errorf("json: %w", err)
			}
			return NewList(items), nil
		case '{':
			d := NewDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return Undefined(), fmt.Errorf("json: %w", err)
				}
				v, err := decodeJSON(dec, depth+1)
				if err != nil {
					return Undefined(), err
				}
				d.AsDict().Set(k.(string), v)
			}
			if _, err := dec.Token(); err != nil {
				return Undefined(), fmt.Errorf("json: %w", err)
			}
			return d, nil
		}
	case json.Number, string, bool, nil:
		return FromGoValue(t), nil
	}
	return Undefined(), fmt.Errorf("json: unexpected %v", t)
}
