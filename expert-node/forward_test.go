package expertnode

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard-llm/switchyard/pkg/gguf"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

const tiny = "../testdata/models/tiny-mixtral-f32.gguf"

// testNode opens a node on the tiny model holding layer 0's experts 0–3,
// without etcd: Forward needs only the loaded units.
func testNode(t testing.TB) *Node {
	t.Helper()
	n, err := Open(Config{NodeID: "n1", ModelPath: tiny})
	if err != nil {
		t.Fatal(err)
	}
	for e := range 4 {
		x, err := n.file.LoadExpert(model.Unit{Layer: 0, Expert: e})
		if err != nil {
			t.Fatal(err)
		}
		n.local.Add(x)
	}
	return n
}

// serveNode runs n on a loopback gRPC server and returns a client.
func serveNode(t testing.TB, n *Node) pb.ExpertServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := n.grpcServer()
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append(pb.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewExpertServiceClient(conn)
}

func validRequest(n *Node) *pb.ForwardRequest {
	x := make([]float32, 2*64)
	for i := range x {
		x[i] = float32(i%7) * 0.1
	}
	return &pb.ForwardRequest{ModelDigest: n.digest, Layer: 0, Rows: 2, RowSize: 64, Activations: pb.EncodeRows(nil, 0, x),
		PairRows: []uint32{0, 0, 1}, PairExperts: []uint32{3, 1, 2}}
}

// expertFFN64 is the reference for one Mixtral expert, written here from
// the definition rather than taken from pkg/model: down · (silu(gate·x) ⊙
// up·x) in float64, with the weights read from the F32 file's
// ffn_{gate,up,down}_exps tensors of layer 0 (dims [E, F, n] for gate and
// up, [F, E, n] for down; row-major, expert-major).
type expertFFN64 struct {
	E, F           int
	gate, up, down []float32
}

func loadExpertFFN64(t *testing.T) *expertFFN64 {
	t.Helper()
	f, err := gguf.Open(tiny, gguf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &expertFFN64{}
	read := func(name string) []float32 {
		ti, ok := f.Tensor(name)
		if !ok || ti.Type != tensor.F32 {
			t.Fatalf("%s: %v, want an F32 tensor", name, ti)
		}
		b, err := f.TensorData(name)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v
	}
	gi, _ := f.Tensor("blk.0.ffn_gate_exps.weight")
	w.E, w.F = int(gi.Dims[0]), int(gi.Dims[1])
	w.gate, w.up, w.down = read("blk.0.ffn_gate_exps.weight"), read("blk.0.ffn_up_exps.weight"), read("blk.0.ffn_down_exps.weight")
	return w
}

// apply returns expert e's output for the row x.
func (w *expertFFN64) apply(e int, x []float32) []float64 {
	h := make([]float64, w.F)
	for j := range w.F {
		var g, u float64
		for i := range w.E {
			g += float64(w.gate[(e*w.F+j)*w.E+i]) * float64(x[i])
			u += float64(w.up[(e*w.F+j)*w.E+i]) * float64(x[i])
		}
		h[j] = g / (1 + math.Exp(-g)) * u
	}
	out := make([]float64, w.E)
	for o := range w.E {
		for j := range w.F {
			out[o] += float64(w.down[(e*w.E+o)*w.F+j]) * h[j]
		}
	}
	return out
}

// round16 rounds v to the nearest value with a mantissa of mant bits
// (ties to even) whose exponent is at least minExp, in float64: F16 is
// (10, -14), BF16 (7, -126). Below 2^minExp the spacing stays that of
// the smallest normal, as subnormals have it. Overflow is not handled:
// the values here are far from either type's largest.
func round16(v float64, mant, minExp int) float64 {
	if v == 0 {
		return v
	}
	_, e := math.Frexp(v) // |v| in [2^(e-1), 2^e)
	ulp := math.Ldexp(1, max(e-1, minExp)-mant)
	return math.RoundToEven(v/ulp) * ulp
}

// wire16 decodes a little-endian 16-bit value with a mantissa of mant bits
// and an exponent bias of bias, from its fields (F16: 10, 15; BF16: 7, 127).
func wire16(b []byte, mant, bias int) float64 {
	u := int(binary.LittleEndian.Uint16(b))
	sign, exp, frac := u>>15, (u>>mant)&(1<<(15-mant)-1), u&(1<<mant-1)
	var v float64
	if exp == 0 {
		v = math.Ldexp(float64(frac), 1-bias-mant)
	} else {
		v = math.Ldexp(float64(frac|1<<mant), exp-bias-mant)
	}
	if sign == 1 {
		v = -v
	}
	return v
}

// TestForwardMatchesReference checks a Forward over gRPC against
// expertFFN64, and each wire encoding against its rounding:
//   - F32 activations and outputs: every output within 1e-7 of the
//     float64 reference (outputs up to 0.12; the node reaches 3e-8 with
//     AVX2 and with -tags noasm alike);
//   - F16 and BF16: the activations the node sees are the request's values
//     rounded (round16, here), and every output on the wire is exactly the
//     node's own float32 output (asked for with output_encoding F32 on the
//     same rounded activations) rounded to the encoding, ties to even; that
//     float32 output again within 1e-7 of the reference.
func TestForwardMatchesReference(t *testing.T) {
	n := testNode(t)
	client := serveNode(t, n)
	ref := loadExpertFFN64(t)
	req := validRequest(n)
	x, _ := pb.DecodeRows(req.Activations, 0, 128)
	pairRows, pairExperts := []int{0, 0, 1}, []int{3, 1, 2}
	check := func(name string, got []float32, x []float32) {
		t.Helper()
		var worst float64
		for p := range pairRows {
			want := ref.apply(pairExperts[p], x[pairRows[p]*64:][:64])
			for i, w := range want {
				worst = max(worst, math.Abs(float64(got[p*64+i])-w))
			}
		}
		var big float64
		for _, v := range got {
			big = max(big, math.Abs(float64(v)))
		}
		t.Logf("%s: largest |output − float64 reference| %.2g, largest |output| %.2g", name, worst, big)
		if worst > 1e-7 {
			t.Errorf("%s: outputs differ from the float64 expert FFN by up to %.3g, want ≤ 1e-7", name, worst)
		}
	}
	resp, err := client.Forward(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pb.DecodeRows(resp.Outputs, resp.Encoding, 3*64)
	if err != nil || resp.Encoding != pb.Encoding_ENCODING_UNSPECIFIED && resp.Encoding != pb.Encoding_ENCODING_F32 {
		t.Fatalf("F32: %v, encoding %s", err, resp.Encoding)
	}
	check("F32", got, x)

	for _, enc := range []struct {
		e          pb.Encoding
		mant, bias int
		minExp     int
	}{
		{pb.Encoding_ENCODING_F16, 10, 15, -14},
		{pb.Encoding_ENCODING_BF16, 7, 127, -126},
	} {
		t.Run(enc.e.String(), func(t *testing.T) {
			r := proto.Clone(req).(*pb.ForwardRequest)
			r.Encoding = enc.e
			r.Activations = pb.EncodeRows(nil, enc.e, x)
			if len(r.Activations) != 2*len(x) {
				t.Fatalf("%d bytes of activations for %d values", len(r.Activations), len(x))
			}
			rx := make([]float32, len(x))
			for i := range x {
				rx[i] = float32(round16(float64(x[i]), enc.mant, enc.minExp))
				if w := wire16(r.Activations[2*i:], enc.mant, enc.bias); w != float64(rx[i]) {
					t.Fatalf("activation %d: %g on the wire, want %g rounded to %g", i, w, x[i], rx[i])
				}
			}
			// The node's float32 outputs on the rounded activations.
			r32 := proto.Clone(r).(*pb.ForwardRequest)
			r32.OutputEncoding = pb.Encoding_ENCODING_F32
			resp32, err := client.Forward(t.Context(), r32)
			if err != nil {
				t.Fatal(err)
			}
			out32, err := pb.DecodeRows(resp32.Outputs, resp32.Encoding, 3*64)
			if err != nil {
				t.Fatal(err)
			}
			check(enc.e.String()+" activations, F32 outputs", out32, rx)
			resp, err := client.Forward(t.Context(), r)
			if err != nil || resp.Encoding != enc.e || len(resp.Outputs) != 3*64*2 {
				t.Fatalf("%v, encoding %s, %d bytes; want %s, %d bytes", err, resp.GetEncoding(), len(resp.GetOutputs()), enc.e, 3*64*2)
			}
			for i, v := range out32 {
				want := round16(float64(v), enc.mant, enc.minExp)
				if got := wire16(resp.Outputs[2*i:], enc.mant, enc.bias); got != want {
					t.Errorf("output %d: %g on the wire, want %g (%g rounded to nearest, ties to even)", i, got, want, v)
				}
			}
		})
	}
	// FP8 (E4M3, a scale per row): inexact. The node computes on what the
	// wire holds, and its outputs come back within E4M3's precision of its
	// float32 outputs: 1/16 of each value, or, below the normal range,
	// half the row's smallest step (its largest / 448 / 512).
	t.Run("FP8_E4M3", func(t *testing.T) {
		fp8 := pb.Encoding_ENCODING_FP8_E4M3
		r := proto.Clone(req).(*pb.ForwardRequest)
		r.Encoding = fp8
		r.Activations = pb.EncodeRowsOf(nil, fp8, x, 64)
		if len(r.Activations) != 2*(4+64) {
			t.Fatalf("%d bytes of activations for 2 rows of 64", len(r.Activations))
		}
		rx, err := pb.DecodeRowsOf(nil, r.Activations, fp8, 2, 64)
		if err != nil {
			t.Fatal(err)
		}
		r32 := proto.Clone(r).(*pb.ForwardRequest)
		r32.OutputEncoding = pb.Encoding_ENCODING_F32
		resp32, err := client.Forward(t.Context(), r32)
		if err != nil {
			t.Fatal(err)
		}
		out32, err := pb.DecodeRows(resp32.Outputs, resp32.Encoding, 3*64)
		if err != nil {
			t.Fatal(err)
		}
		check("FP8 activations, F32 outputs", out32, rx)
		resp, err := client.Forward(t.Context(), r)
		if err != nil || resp.Encoding != fp8 || len(resp.Outputs) != 3*(4+64) {
			t.Fatalf("%v, encoding %s, %d bytes; want %s, %d bytes", err, resp.GetEncoding(), len(resp.GetOutputs()), fp8, 3*(4+64))
		}
		got, err := pb.DecodeRowsOf(nil, resp.Outputs, fp8, 3, 64)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for row := range 3 {
			var big float64
			for _, v := range out32[row*64 : (row+1)*64] {
				big = max(big, math.Abs(float64(v)))
			}
			for i := row * 64; i < (row+1)*64; i++ {
				d := math.Abs(float64(got[i]) - float64(out32[i]))
				worst = max(worst, d/big)
				if d > max(math.Abs(float64(out32[i]))/16, big/448/1024)*1.0001 {
					t.Errorf("output %d: %g on the wire for %g (row's largest %g)", i, got[i], out32[i], big)
				}
			}
		}
		t.Logf("FP8 outputs: largest error %.2g of the row's largest value", worst)
	})
	info, err := client.Info(t.Context(), &pb.InfoRequest{})
	if err != nil || len(info.Units) != 4 || info.ModelDigest != n.digest {
		t.Errorf("info: %v %v", info, err)
	}
}

func TestForwardErrors(t *testing.T) {
	n := testNode(t)
	client := serveNode(t, n)
	cases := []struct {
		name string
		edit func(r *pb.ForwardRequest)
		code codes.Code
		msg  string
	}{
		{"digest mismatch", func(r *pb.ForwardRequest) { r.ModelDigest = "sha256:other" }, codes.FailedPrecondition, "digest"},
		{"unit not held", func(r *pb.ForwardRequest) { r.PairExperts[1] = 7 }, codes.NotFound, "L0/E7"},
		{"unit of another layer", func(r *pb.ForwardRequest) { r.Layer = 1 }, codes.NotFound, "L1/E3"},
		{"unknown layer", func(r *pb.ForwardRequest) { r.Layer = 9 }, codes.InvalidArgument, "unknown layer 9"},
		{"wrong row size", func(r *pb.ForwardRequest) { r.RowSize = 32 }, codes.InvalidArgument, "row size 32"},
		{"short activations", func(r *pb.ForwardRequest) { r.Activations = r.Activations[:100] }, codes.InvalidArgument, "activations"},
		{"row out of range", func(r *pb.ForwardRequest) { r.PairRows[2] = 5 }, codes.InvalidArgument, "row 5 of 2"},
		{"expert out of range", func(r *pb.ForwardRequest) { r.PairExperts[0] = 99 }, codes.InvalidArgument, "expert 99"},
		{"pair lists differ", func(r *pb.ForwardRequest) { r.PairRows = r.PairRows[:1] }, codes.InvalidArgument, "pair rows"},
		{"no rows", func(r *pb.ForwardRequest) { r.Rows = 0 }, codes.InvalidArgument, "0 rows"},
		{"unknown encoding", func(r *pb.ForwardRequest) { r.Encoding = 9 }, codes.InvalidArgument, "encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRequest(n)
			c.edit(r)
			_, err := client.Forward(t.Context(), r)
			st, _ := status.FromError(err)
			if st.Code() != c.code || !contains(st.Message(), c.msg) {
				t.Errorf("got %v, want %v mentioning %q", err, c.code, c.msg)
			}
		})
	}
}

// A request for a dense layer is refused as a bad argument that names the
// layer, even where the node holds units of that index.
func TestForwardDenseLayer(t *testing.T) {
	n := testNode(t)
	n.file.Hyper.DenseLeading = 1 // as deepseek2's leading_dense_block_count = 1 reads
	client := serveNode(t, n)
	_, err := client.Forward(t.Context(), validRequest(n))
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "layer 0 is dense") {
		t.Errorf("got %v, want InvalidArgument saying layer 0 is dense", err)
	}
}

// A step larger than gRPC's default 4 MiB message (here 20,000 rows each
// way) goes through, on the stream as on the unary call.
func TestForwardLargeStep(t *testing.T) {
	n := testNode(t)
	client := serveNode(t, n)
	const rows = 20000
	x := make([]float32, rows*64)
	for i := range x {
		x[i] = float32(i%13) * 0.01
	}
	req := &pb.ForwardRequest{ModelDigest: n.digest, Layer: 0, Rows: rows, RowSize: 64, Activations: pb.EncodeRows(nil, 0, x)}
	for i := range rows {
		req.PairRows = append(req.PairRows, uint32(i))
		req.PairExperts = append(req.PairExperts, uint32(i%4))
	}
	resp, err := client.Forward(t.Context(), req)
	if err != nil || len(resp.Outputs) != rows*64*4 {
		t.Fatalf("unary: %v, %d bytes", err, len(resp.GetOutputs()))
	}
	st, err := client.ForwardStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.ForwardStreamRequest{CallId: 1, Request: req}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Recv()
	if err != nil || got.Code != 0 || !proto.Equal(got.Response, resp) {
		t.Fatalf("stream: %v, code %d %q", err, got.GetCode(), got.GetMessage())
	}
}

// TestForwardStream checks the stream answers each call with its id, the
// same outputs as the unary Forward, and a failed call's code and message
// without closing the stream.
func TestForwardStream(t *testing.T) {
	n := testNode(t)
	client := serveNode(t, n)
	want, err := client.Forward(t.Context(), validRequest(n))
	if err != nil {
		t.Fatal(err)
	}
	st, err := client.ForwardStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bad := validRequest(n)
	bad.PairExperts[1] = 7
	reqs := []*pb.ForwardStreamRequest{{CallId: 7, Request: validRequest(n)}, {CallId: 3, Request: bad}, {CallId: 9}, {CallId: 1, Request: validRequest(n)}}
	for _, r := range reqs { // all in flight before the first answer is read
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reqs {
		got, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case got.CallId != r.CallId:
			t.Errorf("answer for call %d, want %d (served in order)", got.CallId, r.CallId)
		case r.CallId == 3:
			if codes.Code(got.Code) != codes.NotFound || !contains(got.Message, "L0/E7") || got.Response != nil {
				t.Errorf("bad call answered %v %q %v, want NotFound naming L0/E7", codes.Code(got.Code), got.Message, got.Response)
			}
		case r.CallId == 9:
			if codes.Code(got.Code) != codes.InvalidArgument {
				t.Errorf("empty call answered %v, want InvalidArgument", codes.Code(got.Code))
			}
		default:
			if got.Code != 0 || !proto.Equal(got.Response, want) {
				t.Errorf("call %d: code %d, outputs equal to unary: %v", r.CallId, got.Code, proto.Equal(got.Response, want))
			}
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

// BenchmarkRoundTrip measures one Forward of a tiny-model row on loopback,
// unary against the stream; the experts' work is a few microseconds, so
// this is the cost of the call itself.
func BenchmarkRoundTrip(b *testing.B) {
	n := testNode(b)
	client := serveNode(b, n)
	req := validRequest(n)
	b.Run("unary", func(b *testing.B) {
		for b.Loop() {
			if _, err := client.Forward(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		st, err := client.ForwardStream(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		id := uint64(0)
		for b.Loop() {
			id++
			if err := st.Send(&pb.ForwardStreamRequest{CallId: id, Request: req}); err != nil {
				b.Fatal(err)
			}
			if r, err := st.Recv(); err != nil || r.Code != 0 {
				b.Fatal(err, r.GetMessage())
			}
		}
		st.CloseSend()
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// FuzzForward decodes arbitrary bytes as a ForwardRequest and serves it:
// no panic, and every refusal carries one of the documented codes.
func FuzzForward(f *testing.F) {
	n := testNode(f)
	seed, _ := proto.Marshal(validRequest(n))
	f.Add(seed)
	r := validRequest(n)
	r.Rows = 1 << 20
	b, _ := proto.Marshal(r)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.ForwardRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if len(req.ModelDigest) > 0 && req.ModelDigest[0] == 'x' {
			req.ModelDigest = n.digest // let the fuzzer past the digest check
		}
		_, err := n.Forward(t.Context(), &req)
		switch status.Code(err) {
		case codes.OK, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		default:
			t.Fatalf("unexpected error code: %v", err)
		}
	})
}

// BenchmarkNodeForward measures a Forward as the node serves it, without
// the transport: its allocations are the response the transport sends.
func BenchmarkNodeForward(b *testing.B) {
	n := testNode(b)
	req := validRequest(n)
	for b.Loop() {
		if _, err := n.Forward(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// A stream keeps a decode step's buffers for the next call, and drops a
// long prompt's.
func TestTrimKeepsSmallBuffers(t *testing.T) {
	small, big := make([]byte, 0, 64<<10), make([]byte, 0, keepBytes+1)
	req, resp := &pb.ForwardRequest{Activations: small}, &pb.ForwardResponse{Outputs: small}
	trim(req, resp)
	if req.Activations == nil || resp.Outputs == nil {
		t.Error("a decode step's buffers were dropped")
	}
	req.Activations, resp.Outputs = big, big
	trim(req, resp)
	if req.Activations != nil || resp.Outputs != nil {
		t.Error("a long prompt's buffers were kept")
	}
	trim(nil, resp) // a call without a request
}
