package expertnode

import (
	"context"
	"errors"
	"io"
	"runtime"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard-llm/switchyard/pkg/model"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// Limits on one Forward request.
const (
	maxRows  = 1 << 16
	maxPairs = 1 << 18
)

// Forward applies the requested experts to the request's rows.
func (n *Node) Forward(ctx context.Context, req *pb.ForwardRequest) (*pb.ForwardResponse, error) {
	resp := new(pb.ForwardResponse)
	if err := n.observe(ctx, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// observe is forward, counted in the node's metrics.
func (n *Node) observe(ctx context.Context, req *pb.ForwardRequest, resp *pb.ForwardResponse) error {
	start := time.Now()
	err := n.forward(ctx, req, resp)
	if m := n.metrics; m != nil {
		m.forwards.WithLabelValues(status.Code(err).String()).Inc()
		m.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			m.rows.Add(float64(len(req.PairRows)))
		}
	}
	return err
}

// ForwardStream serves Forward calls from one stream in order, answering
// each with its call id; a failed call is answered with its status and the
// stream goes on. The stream's request and answer are reused call after
// call, their buffers with them: the codec decodes into the request, and
// Send has encoded the answer by the time it returns (this server has no
// stats handler that could hold on to it).
func (n *Node) ForwardStream(s pb.ExpertService_ForwardStreamServer) error {
	var in pb.ForwardStreamRequest
	var out pb.ForwardStreamResponse
	var resp pb.ForwardResponse
	for {
		if err := s.RecvMsg(&in); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		out = pb.ForwardStreamResponse{CallId: in.CallId}
		if in.Request == nil {
			out.Code, out.Message = uint32(codes.InvalidArgument), "no request"
		} else if err := n.observe(s.Context(), in.Request, &resp); err != nil {
			st := status.Convert(err)
			out.Code, out.Message = uint32(st.Code()), st.Message()
		} else {
			out.Response = &resp
		}
		if err := s.Send(&out); err != nil {
			return err
		}
		trim(in.Request, &resp)
	}
}

// keepBytes is the largest buffer a stream keeps for its next call: a
// decode step of 64 streams, or a 256-token prompt chunk, of a
// 4096-wide model in f32.
const keepBytes = 4 << 20

// trim drops a stream's buffers larger than keepBytes, so that a long
// prompt's are not held for the decode steps after it.
func trim(req *pb.ForwardRequest, resp *pb.ForwardResponse) {
	if cap(resp.Outputs) > keepBytes {
		resp.Outputs = nil
	}
	if req != nil && cap(req.Activations) > keepBytes {
		req.Activations = nil
	}
}

// forward computes req's answer into resp, reusing resp's buffer.
func (n *Node) forward(ctx context.Context, req *pb.ForwardRequest, resp *pb.ForwardResponse) error {
	h := n.file.Hyper
	switch {
	case req.ModelDigest != n.digest:
		return status.Errorf(codes.FailedPrecondition, "model digest %q does not match this node's %q (%s)", req.ModelDigest, n.digest, n.cfg.ModelPath)
	case int(req.Layer) >= h.Layers:
		return status.Errorf(codes.InvalidArgument, "unknown layer %d (the model has %d)", req.Layer, h.Layers)
	case !h.MoELayer(int(req.Layer)):
		return status.Errorf(codes.InvalidArgument, "layer %d is dense: it has no routed experts", req.Layer)
	case int(req.RowSize) != h.Embd:
		return status.Errorf(codes.InvalidArgument, "row size %d, want %d", req.RowSize, h.Embd)
	case req.Rows == 0 || req.Rows > maxRows:
		return status.Errorf(codes.InvalidArgument, "%d rows (want 1 to %d)", req.Rows, maxRows)
	case len(req.PairRows) != len(req.PairExperts):
		return status.Errorf(codes.InvalidArgument, "%d pair rows for %d pair experts", len(req.PairRows), len(req.PairExperts))
	case len(req.PairRows) == 0 || len(req.PairRows) > maxPairs:
		return status.Errorf(codes.InvalidArgument, "%d pairs (want 1 to %d)", len(req.PairRows), maxPairs)
	case req.OutputEncoding.BytesPerValue() == 0:
		return status.Errorf(codes.InvalidArgument, "unknown output encoding %d", req.OutputEncoding)
	}
	sc := n.scratch.Get()
	defer n.scratch.Put(sc)
	x, ok := pb.F32View(req.Activations, req.Encoding)
	if !ok || len(x) != int(req.Rows)*h.Embd {
		var err error
		if x, err = pb.DecodeRowsOf(sc.x, req.Activations, req.Encoding, int(req.Rows), h.Embd); err != nil {
			return status.Errorf(codes.InvalidArgument, "activations: %v", err)
		}
		sc.x = x
	}
	rows, experts := sc.pairs(len(req.PairRows))
	for i := range rows {
		if req.PairRows[i] >= req.Rows {
			return status.Errorf(codes.InvalidArgument, "pair %d refers to row %d of %d", i, req.PairRows[i], req.Rows)
		}
		if int(req.PairExperts[i]) >= h.Experts {
			return status.Errorf(codes.InvalidArgument, "pair %d refers to expert %d of %d", i, req.PairExperts[i], h.Experts)
		}
		rows[i], experts[i] = int32(req.PairRows[i]), int32(req.PairExperts[i])
	}
	enc := req.OutputEncoding
	if enc == pb.Encoding_ENCODING_UNSPECIFIED {
		enc = req.Encoding
	}
	// Float32 outputs are computed in the answer's own buffer.
	nout := len(experts) * h.Embd
	var out []float32
	direct := false
	if enc.BytesPerValue() == 4 {
		resp.Outputs = slices.Grow(resp.Outputs[:0], 4*nout)[:4*nout]
		out, direct = pb.F32View(resp.Outputs, enc)
	}
	if !direct {
		if cap(sc.out) < nout {
			sc.out = make([]float32, nout)
		}
		out = sc.out[:nout]
	}
	// Let goroutines that are ready run before this compute holds the
	// processor: where a cluster's roles share a process (up), they are
	// the other nodes' requests for this layer, which then compute
	// alongside this one instead of after it.
	runtime.Gosched()
	n.mu.RLock()
	err := n.local.Apply(ctx, int(req.Layer), x, rows, experts, out)
	n.mu.RUnlock()
	n.local.Pool.Rest() // the next request is a network round trip away
	switch {
	case errors.Is(err, model.ErrNotHeld):
		return status.Errorf(codes.NotFound, "%v on node %s", err, n.cfg.NodeID)
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case err != nil:
		return status.Errorf(codes.Internal, "forward: %v", err)
	}
	resp.Encoding = enc
	if !direct {
		resp.Outputs = pb.EncodeRowsOf(resp.Outputs[:0], enc, out, h.Embd)
	}
	return nil
}

// scratch is one Forward's working memory, pooled across calls.
type scratch struct {
	x, out        []float32
	rows, experts []int32
}

// pairs returns the pair lists, n long.
func (s *scratch) pairs(n int) (rows, experts []int32) {
	if cap(s.rows) < n {
		s.rows, s.experts = make([]int32, n), make([]int32, n)
	}
	return s.rows[:n], s.experts[:n]
}

// Info reports the node's model and loaded units.
func (n *Node) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InfoResponse, error) {
	n.mu.RLock()
	units := sortUnits(n.local.Units())
	n.mu.RUnlock()
	r := &pb.InfoResponse{NodeId: n.cfg.NodeID, ModelDigest: n.digest, FileBytesRead: uint64(n.bytesRead())}
	for _, u := range units {
		r.Units = append(r.Units, &pb.Unit{Layer: uint32(u.Layer), Expert: uint32(u.Expert)})
	}
	return r, nil
}

// Digest is the model digest this node serves.
func (n *Node) Digest() string { return n.digest }

// grpcServer returns a gRPC server for the node's ExpertService.
func (n *Node) grpcServer(opts ...grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(append(opts, pb.ServerOptions()...)...)
	pb.RegisterExpertServiceServer(srv, n)
	return srv
}
