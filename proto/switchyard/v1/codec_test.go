package switchyardv1

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// randomRequest and randomResponse fill every field, some left unset.
func randomRequest(r *rand.Rand) *ForwardStreamRequest {
	m := &ForwardStreamRequest{CallId: r.Uint64() >> r.IntN(64)}
	if r.IntN(5) == 0 {
		return m
	}
	q := &ForwardRequest{ModelDigest: []string{"", "abc", "sha256:0123"}[r.IntN(3)], Layer: r.Uint32N(64), Rows: r.Uint32(),
		RowSize: r.Uint32N(5000), Encoding: Encoding(r.IntN(4) - 1), OutputEncoding: Encoding(r.IntN(4))}
	q.Activations = make([]byte, r.IntN(300))
	for i := range q.Activations {
		q.Activations[i] = byte(r.Uint32())
	}
	for range r.IntN(20) {
		q.PairRows = append(q.PairRows, r.Uint32()>>r.IntN(32))
		q.PairExperts = append(q.PairExperts, r.Uint32N(300))
	}
	m.Request = q
	return m
}

func randomResponse(r *rand.Rand) *ForwardStreamResponse {
	m := &ForwardStreamResponse{CallId: r.Uint64() >> r.IntN(64)}
	if r.IntN(4) == 0 {
		m.Code, m.Message = r.Uint32N(17), []string{"", "node failed", "ünïcode"}[r.IntN(3)]
		return m
	}
	m.Response = &ForwardResponse{Encoding: Encoding(r.IntN(4)), Outputs: make([]byte, r.IntN(300))}
	for i := range m.Response.Outputs {
		m.Response.Outputs[i] = byte(r.Uint32())
	}
	return m
}

// variants re-encodes b the ways another encoder may: an unknown field of
// every wire type appended, a nested message split in two occurrences
// (which merge), and repeated fields unpacked.
func variants(b []byte) [][]byte {
	out := [][]byte{b}
	unk := protowire.AppendTag(nil, 99, protowire.VarintType)
	unk = protowire.AppendVarint(unk, 7)
	unk = protowire.AppendTag(unk, 98, protowire.Fixed64Type)
	unk = protowire.AppendFixed64(unk, 1)
	unk = protowire.AppendTag(unk, 97, protowire.StartGroupType)
	unk = protowire.AppendTag(unk, 1, protowire.Fixed32Type)
	unk = protowire.AppendFixed32(unk, 5)
	unk = protowire.AppendTag(unk, 97, protowire.EndGroupType)
	unk = protowire.AppendTag(unk, 1, protowire.Fixed32Type) // a known number with the wrong type
	unk = protowire.AppendFixed32(unk, 5)
	out = append(out, append(append([]byte(nil), unk...), b...))

	// Field 2 (the nested message) split at each of its fields, and its
	// packed lists (fields 7 and 8) unpacked.
	var split, unpacked []byte
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		whole := rest[:n+m]
		rest = rest[n+m:]
		if num != 2 {
			split, unpacked = append(split, whole...), append(unpacked, whole...)
			continue
		}
		inner, _ := protowire.ConsumeBytes(whole[n:])
		var un []byte
		for in := inner; len(in) > 0; {
			inum, ityp, in1 := protowire.ConsumeTag(in)
			im := protowire.ConsumeFieldValue(inum, ityp, in[in1:])
			f := in[:in1+im]
			in = in[in1+im:]
			split = protowire.AppendTag(split, 2, protowire.BytesType)
			split = protowire.AppendBytes(split, f)
			if (inum == 7 || inum == 8) && ityp == protowire.BytesType {
				vals, _ := protowire.ConsumeBytes(f[in1:])
				for len(vals) > 0 {
					v, k := protowire.ConsumeVarint(vals)
					vals = vals[k:]
					un = protowire.AppendTag(un, inum, protowire.VarintType)
					un = protowire.AppendVarint(un, v)
				}
				continue
			}
			un = append(un, f...)
		}
		unpacked = protowire.AppendTag(unpacked, 2, protowire.BytesType)
		unpacked = protowire.AppendBytes(unpacked, un)
	}
	return append(out, split, unpacked)
}

// decodeBoth decodes b with the codec, into dirty (a message of the same
// type holding other values), and with the proto runtime into fresh, and
// says whether each accepted it.
func decodeBoth(t *testing.T, b []byte, dirty, fresh proto.Message) (codecErr, protoErr error) {
	t.Helper()
	codecErr = newCodec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, dirty)
	protoErr = proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, fresh)
	return codecErr, protoErr
}

func TestCodecDecodesAsTheProtoRuntime(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		req, dirtyReq := randomRequest(r), randomRequest(r)
		resp, dirtyResp := randomResponse(r), randomResponse(r)
		for _, c := range []struct {
			msg, dirty, fresh proto.Message
		}{{req, dirtyReq, new(ForwardStreamRequest)}, {resp, dirtyResp, new(ForwardStreamResponse)}} {
			b, err := proto.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			for j, v := range variants(b) {
				cerr, perr := decodeBoth(t, v, c.dirty, c.fresh)
				if cerr != nil || perr != nil {
					t.Fatalf("case %d variant %d: codec: %v, proto: %v", i, j, cerr, perr)
				}
				if !proto.Equal(c.dirty, c.fresh) || !proto.Equal(c.dirty, c.msg) {
					t.Fatalf("case %d variant %d:\ncodec %v\nproto %v\nsent  %v", i, j, c.dirty, c.fresh, c.msg)
				}
			}
		}
	}
}

func TestCodecRefusesWhatTheProtoRuntimeRefuses(t *testing.T) {
	good, _ := proto.Marshal(&ForwardStreamRequest{CallId: 3, Request: &ForwardRequest{ModelDigest: "d", Activations: []byte{1, 2}, PairRows: []uint32{0}}})
	badUTF8 := protowire.AppendTag(nil, 2, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), []byte{0xff, 0xfe}))
	for name, b := range map[string][]byte{
		"truncated":       good[:len(good)-1],
		"field number 0":  {0x00, 0x01},
		"lone end group":  protowire.AppendTag(nil, 5, protowire.EndGroupType),
		"invalid UTF-8":   badUTF8,
		"overlong varint": {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		cerr, perr := decodeBoth(t, b, new(ForwardStreamRequest), new(ForwardStreamRequest))
		if cerr == nil || perr == nil {
			t.Errorf("%s: codec: %v, proto: %v; want both to refuse", name, cerr, perr)
		}
	}
}

func TestCodecReusesBuffers(t *testing.T) {
	c := newCodec()
	decode := func(m proto.Message, sent proto.Message) {
		t.Helper()
		b, _ := proto.Marshal(sent)
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b[:3]), mem.SliceBuffer(b[3:])}, m); err != nil {
			t.Fatal(err)
		}
	}
	var req ForwardStreamRequest
	decode(&req, &ForwardStreamRequest{CallId: 1, Request: &ForwardRequest{ModelDigest: "d", Activations: make([]byte, 4096), PairRows: []uint32{0, 0}, PairExperts: []uint32{1, 2}}})
	q, act, digest := req.Request, &req.Request.Activations[0], req.Request.ModelDigest
	decode(&req, &ForwardStreamRequest{CallId: 2, Request: &ForwardRequest{ModelDigest: "d", Activations: []byte{9}, PairRows: []uint32{0}, PairExperts: []uint32{3}}})
	if req.Request != q || &req.Request.Activations[0] != act || req.CallId != 2 || req.Request.Activations[0] != 9 || len(req.Request.PairExperts) != 1 {
		t.Errorf("second request not decoded into the first's buffers: %v", &req)
	}
	if req.Request.ModelDigest != digest {
		t.Errorf("digest %q, want %q", req.Request.ModelDigest, digest)
	}

	var resp ForwardStreamResponse
	decode(&resp, &ForwardStreamResponse{CallId: 1, Response: &ForwardResponse{Outputs: make([]byte, 8192)}})
	out := &resp.Response.Outputs[0]
	decode(&resp, &ForwardStreamResponse{CallId: 2, Response: &ForwardResponse{Outputs: make([]byte, 4096)}})
	if &resp.Response.Outputs[0] != out || len(resp.Response.Outputs) != 4096 {
		t.Error("second response not decoded into the first's outputs buffer")
	}
	decode(&resp, &ForwardStreamResponse{CallId: 3, Code: 5, Message: "gone"})
	if resp.Response != nil || resp.Code != 5 || resp.Message != "gone" {
		t.Errorf("failed call decoded as %v", &resp)
	}
}

// FuzzCodec checks that the codec accepts exactly what the proto runtime
// accepts, and decodes it to the same message.
func FuzzCodec(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		b, _ := proto.Marshal(randomRequest(r))
		f.Add(b)
		b, _ = proto.Marshal(randomResponse(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, c := range []struct{ dirty, fresh proto.Message }{
			{randomRequest(r), new(ForwardStreamRequest)}, {randomResponse(r), new(ForwardStreamResponse)},
		} {
			cerr, perr := decodeBoth(t, b, c.dirty, c.fresh)
			if (cerr == nil) != (perr == nil) {
				t.Fatalf("codec: %v, proto: %v", cerr, perr)
			}
			if cerr == nil && !proto.Equal(c.dirty, c.fresh) {
				t.Fatalf("codec %v, proto %v", c.dirty, c.fresh)
			}
		}
	})
}
