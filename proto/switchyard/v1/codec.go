package switchyardv1

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the base codec
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// codec is gRPC's proto codec, except that the two ForwardStream messages
// are decoded into the message passed in, reusing its buffers (the
// activations or outputs, the pair lists) where the proto runtime would
// allocate new ones. A node answers hundreds of these calls a second, and
// each fresh buffer is an allocation and, between collections, new pages
// for the kernel to fault in — on the decode step's critical path.
//
// It keeps the name "proto": the bytes on the wire are the same, so either
// side may use the stock codec. Unknown fields of the two messages are
// skipped, not kept.
type codec struct{ base encoding.CodecV2 }

func newCodec() codec { return codec{base: encoding.GetCodecV2("proto")} }

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	switch m := v.(type) {
	case *ForwardStreamRequest, *ForwardStreamResponse:
		var b []byte
		if len(data) == 1 {
			b = data[0].ReadOnlyData()
		} else {
			buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
			defer buf.Free()
			b = buf.ReadOnlyData()
		}
		var err error
		if req, ok := m.(*ForwardStreamRequest); ok {
			err = req.decode(b)
		} else {
			err = m.(*ForwardStreamResponse).decode(b)
		}
		if err != nil {
			return fmt.Errorf("proto: cannot parse %T: %w", v, err)
		}
		return nil
	}
	return c.base.Unmarshal(data, v)
}

// codecServerOption and codecCallOption install the codec on ExpertService
// servers and clients.
func codecServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(newCodec()) }
func codecCallOption() grpc.CallOption     { return grpc.ForceCodecV2(newCodec()) }

var errWire = errors.New("malformed wire data")

// eachField calls fn with each field of b in turn: its number and wire
// type, and its value, a varint (v) or bytes (bs). Fields of other wire
// types are skipped; the first error stops the walk.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return errWire
		}
		b = b[n:]
		var v uint64
		var bs []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			bs, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if typ != protowire.VarintType && typ != protowire.BytesType {
			continue
		}
		if err := fn(num, typ, v, bs); err != nil {
			return err
		}
	}
	return nil
}

// str returns b as a string, reusing old when they are equal (a digest
// sent with every call), and refuses invalid UTF-8 as proto3 does.
func str(old string, b []byte) (string, error) {
	if string(b) == old {
		return old, nil
	}
	if !utf8.Valid(b) {
		return "", errors.New("string field contains invalid UTF-8")
	}
	return string(b), nil
}

// uint32s appends a repeated uint32 field's values, packed or not.
func uint32s(dst []uint32, typ protowire.Type, v uint64, bs []byte) ([]uint32, error) {
	if typ == protowire.VarintType {
		return append(dst, uint32(v)), nil
	}
	for len(bs) > 0 {
		x, n := protowire.ConsumeVarint(bs)
		if n < 0 {
			return nil, errWire
		}
		dst, bs = append(dst, uint32(x)), bs[n:]
	}
	return dst, nil
}

// decode replaces m with the message in b, reusing m's buffers.
func (m *ForwardStreamRequest) decode(b []byte) error {
	r := m.Request
	digest := r.GetModelDigest()
	m.CallId, m.Request = 0, nil
	return eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.CallId = v
		case num == 2 && typ == protowire.BytesType:
			if m.Request == nil { // the first occurrence; later ones merge
				if r == nil {
					r = new(ForwardRequest)
				}
				*r = ForwardRequest{Activations: r.Activations[:0], PairRows: r.PairRows[:0], PairExperts: r.PairExperts[:0]}
				m.Request = r
			}
			return m.Request.merge(bs, digest)
		}
		return nil
	})
}

// merge decodes b into r; digest is the previous message's, for str.
func (r *ForwardRequest) merge(b []byte, digest string) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) (err error) {
		switch {
		case num == 1 && typ == protowire.BytesType:
			r.ModelDigest, err = str(digest, bs)
		case num == 2 && typ == protowire.VarintType:
			r.Layer = uint32(v)
		case num == 3 && typ == protowire.VarintType:
			r.Rows = uint32(v)
		case num == 4 && typ == protowire.VarintType:
			r.RowSize = uint32(v)
		case num == 5 && typ == protowire.VarintType:
			r.Encoding = Encoding(int32(v))
		case num == 6 && typ == protowire.BytesType:
			r.Activations = append(r.Activations[:0], bs...)
		case num == 7:
			r.PairRows, err = uint32s(r.PairRows, typ, v, bs)
		case num == 8:
			r.PairExperts, err = uint32s(r.PairExperts, typ, v, bs)
		case num == 9 && typ == protowire.VarintType:
			r.OutputEncoding = Encoding(int32(v))
		}
		return err
	})
}

// decode replaces m with the message in b, reusing m's buffers.
func (m *ForwardStreamResponse) decode(b []byte) error {
	r := m.Response
	m.CallId, m.Response, m.Code, m.Message = 0, nil, 0, ""
	return eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) (err error) {
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.CallId = v
		case num == 2 && typ == protowire.BytesType:
			if m.Response == nil {
				if r == nil {
					r = new(ForwardResponse)
				}
				*r = ForwardResponse{Outputs: r.Outputs[:0]}
				m.Response = r
			}
			err = m.Response.merge(bs)
		case num == 3 && typ == protowire.VarintType:
			m.Code = uint32(v)
		case num == 4 && typ == protowire.BytesType:
			m.Message, err = str("", bs)
		}
		return err
	})
}

func (r *ForwardResponse) merge(b []byte) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v uint64, bs []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.Encoding = Encoding(int32(v))
		case num == 2 && typ == protowire.BytesType:
			r.Outputs = append(r.Outputs[:0], bs...)
		}
		return nil
	})
}
