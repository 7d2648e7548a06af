package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/switchyard-llm/switchyard/pkg/freelist"
	"github.com/switchyard-llm/switchyard/pkg/membership"
	"github.com/switchyard-llm/switchyard/pkg/model"
	"github.com/switchyard-llm/switchyard/pkg/placement"
	"github.com/switchyard-llm/switchyard/pkg/routingstats"
	"github.com/switchyard-llm/switchyard/pkg/tensor"
	pb "github.com/switchyard-llm/switchyard/proto/switchyard/v1"
)

// dispatcher is the coordinator's view of the expert nodes: it implements
// model.Experts by sending each node the rows routed to the units it
// holds, all nodes concurrently, and putting the answers back in the
// tokens' top-k order.
type dispatcher struct {
	dial    grpc.DialOption // transport credentials for expert nodes
	digest  string
	embd    int
	enc     pb.Encoding
	timeout time.Duration
	members *membership.Members // nil: no gossip view
	stats   *routingstats.Recorder
	metrics *metrics
	log     *slog.Logger

	pool         *tensor.Pool  // rested while calls are out
	microBatches int           // Config.MicroBatches
	perRow       int           // experts per token (k)
	keys         [][]string    // placement.UnitKey of every unit, by layer and expert; none for a dense layer
	unitWait     time.Duration // how long to wait for a unit with no ready replica

	mu         sync.RWMutex
	suspects   map[string]time.Time // node → until when it is avoided
	suspectFor time.Duration        // how long a node whose call failed is avoided
	pmap       placement.Map
	// registered and status are etcd's view, as last listed; nodes and
	// ready are what routing uses: the same, plus the nodes whose
	// registration (or status) lapsed while gossip still sees them alive —
	// leases lapse together when etcd is away or loses its data, and such
	// nodes go on serving.
	registered map[string]placement.Node
	status     map[string]map[string]bool // node → unit key → ready
	nodes      map[string]placement.Node
	ready      map[string]map[string]bool // node → unit key → ready
	conns      map[string]*nodeConn
	closed     bool
	rr         atomic.Uint64

	dispatches freelist.List[dispatch] // with the buffers of their calls
}

type nodeConn struct {
	addr   string
	conn   *grpc.ClientConn
	stream *nodeStream
	// down is cancelled when gossip declares the node dead, abandoning
	// calls in flight to it (a partitioned node never answers).
	down context.Context
	fail context.CancelFunc
}

// suspectFor is how long a node whose call failed is avoided.
const suspectFor = 3 * time.Second

func newDispatcher(pool *tensor.Pool, dial grpc.DialOption, digest string, h model.Hyper, enc pb.Encoding, timeout, unitWait time.Duration, members *membership.Members, stats *routingstats.Recorder, m *metrics, log *slog.Logger) *dispatcher {
	keys := make([][]string, h.Layers)
	for _, l := range h.MoELayers() {
		keys[l] = make([]string, h.Experts)
		for e := range keys[l] {
			keys[l][e] = placement.UnitKey(model.Unit{Layer: l, Expert: e})
		}
	}
	embd, k := h.Embd, h.ExpertsUsed
	return &dispatcher{pool: pool, keys: keys, dial: dial, digest: digest, embd: embd, perRow: k, enc: enc, timeout: timeout, unitWait: unitWait, members: members, stats: stats, metrics: m, log: log,
		suspects: map[string]time.Time{}, suspectFor: suspectFor, registered: map[string]placement.Node{}, status: map[string]map[string]bool{},
		nodes: map[string]placement.Node{}, ready: map[string]map[string]bool{}, conns: map[string]*nodeConn{}}
}

// setNodes takes the registered nodes, as listed from etcd.
func (d *dispatcher) setNodes(nodes map[string]placement.Node) {
	d.mu.Lock()
	d.registered = nodes
	stale := d.reconcile()
	d.mu.Unlock()
	closeConns(stale)
}

// setStatus takes the nodes' status, as listed from etcd.
func (d *dispatcher) setStatus(st map[string]placement.Status) {
	status := map[string]map[string]bool{}
	for id, s := range st {
		if s.Digest != d.digest {
			d.log.Warn("expert node serves another model", "node", id, "digest", s.Digest, "want", d.digest)
			continue
		}
		r := map[string]bool{}
		for _, u := range s.Ready {
			r[u] = true
		}
		status[id] = r
	}
	d.mu.Lock()
	d.status = status
	stale := d.reconcile()
	d.mu.Unlock()
	closeConns(stale)
}

// setPlacement takes the placement, as read from etcd. An absent one
// (etcd lost its data) or one older than the placement in use (etcd
// restored from an older copy) is not applied: serving goes on with the
// last one seen until the controller writes a newer one.
func (d *dispatcher) setPlacement(m placement.Map) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case m.Units == nil && m.Epoch == 0:
		if d.pmap.Units != nil {
			d.log.Warn("etcd holds no placement; serving on the last one seen", "epoch", d.pmap.Epoch)
		}
	case m.Epoch < d.pmap.Epoch:
		d.log.Warn("etcd holds an older placement than the one in use; keeping it", "etcd_epoch", m.Epoch, "epoch", d.pmap.Epoch)
	default:
		d.pmap = m
	}
}

// lastPlacement is the placement in use: the last one seen.
func (d *dispatcher) lastPlacement() placement.Map {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.pmap
}

// view returns what routing knows of node: its registration (possibly
// one that lapsed) and the units it reported ready.
func (d *dispatcher) view(node string) (placement.Node, map[string]bool, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	n, ok := d.nodes[node]
	return n, maps.Clone(d.ready[node]), ok
}

// healthy reports whether node's gRPC health service answers SERVING.
func (d *dispatcher) healthy(ctx context.Context, node string) bool {
	d.mu.RLock()
	c := d.conns[node]
	d.mu.RUnlock()
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && r.Status == healthpb.HealthCheckResponse_SERVING
}

// alive reports whether gossip sees node alive. Must hold d.mu.
func (d *dispatcher) alive(node string) bool { return d.members != nil && d.members.Alive(node) }

// reconcile derives nodes and ready from etcd's view and gossip, dials
// nodes that are new and returns the connections to close (outside the
// lock). Must hold d.mu for writing.
func (d *dispatcher) reconcile() (stale []*nodeConn) {
	if d.closed {
		return nil
	}
	nodes := map[string]placement.Node{}
	maps.Copy(nodes, d.registered)
	for id, n := range d.nodes {
		if _, ok := nodes[id]; !ok && d.alive(id) {
			nodes[id] = n // registration lapsed, still alive: keep serving
		}
	}
	for id := range d.nodes {
		if _, ok := nodes[id]; !ok {
			d.log.Info("expert node gone: no registration, not alive in gossip", "node", id)
		}
	}
	ready := map[string]map[string]bool{}
	maps.Copy(ready, d.status)
	for id, r := range d.ready {
		if _, ok := ready[id]; !ok && d.alive(id) {
			if _, ok := nodes[id]; ok {
				ready[id] = r // status lapsed with the registration
			}
		}
	}
	d.nodes, d.ready = nodes, ready
	for id, c := range d.conns {
		if n, ok := nodes[id]; !ok || n.Addr != c.addr {
			stale = append(stale, c)
			delete(d.conns, id)
		}
	}
	for id, n := range nodes {
		if _, ok := d.conns[id]; ok {
			continue
		}
		conn, err := grpc.NewClient(n.Addr, append(pb.DialOptions(), d.dial)...)
		if err != nil {
			d.log.Error("dial expert node", "node", id, "addr", n.Addr, "err", err)
			continue
		}
		down, fail := context.WithCancel(context.Background())
		d.conns[id] = &nodeConn{addr: n.Addr, conn: conn, stream: newNodeStream(pb.NewExpertServiceClient(conn)), down: down, fail: fail}
		d.metrics.errors.WithLabelValues(id).Add(0) // export the series before the first error
	}
	return stale
}

// close abandons every node's calls in flight and its connection.
func (c *nodeConn) close() {
	c.fail()
	c.stream.close()
	c.conn.Close()
}

func closeConns(cs []*nodeConn) {
	for _, c := range cs {
		c.close()
	}
}

func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	stale := make([]*nodeConn, 0, len(d.conns))
	for id, c := range d.conns {
		stale = append(stale, c)
		delete(d.conns, id)
	}
	d.mu.Unlock()
	closeConns(stale)
}

// usable reports whether node can serve unit key now. Must hold d.mu.
func (d *dispatcher) usable(node, key string) bool {
	if !d.ready[node][key] || d.conns[node] == nil || time.Now().Before(d.suspects[node]) {
		return false
	}
	return d.members == nil || !d.members.Known(node) || d.members.Alive(node)
}

// replicas appends to dst the nodes that can serve key now, leaving out
// those in skip. Must hold d.mu.
func (d *dispatcher) replicas(dst []string, key string, skip map[string]bool) []string {
	for _, n := range d.pmap.Units[key] {
		if !skip[n] && d.usable(n, key) {
			dst = append(dst, n)
		}
	}
	return dst
}

// missing lists the model's units without a usable replica (empty when
// the cluster can serve every token).
func (d *dispatcher) missing() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []string
	for _, layer := range d.keys {
		for _, key := range layer {
			if len(d.replicas(nil, key, nil)) == 0 {
				out = append(out, key)
			}
		}
	}
	return out
}

// MicroBatches implements model.MicroBatcher: Config.MicroBatches, or,
// when that is 0, two for steps of 32 rows or more and one otherwise (on
// two cores, halving a smaller step's expert batches cost more than the
// overlap gained).
func (d *dispatcher) MicroBatches(rows int) int {
	switch {
	case d.microBatches > 0:
		return d.microBatches
	case rows >= 32:
		return 2
	}
	return 1
}

// nodeCall is the work for one node in one layer. A dispatch keeps its
// calls, with their buffers, for its next round and its next Forward.
type nodeCall struct {
	node  string
	conn  *nodeConn
	rows  []int   // original row of each local row
	local []int32 // local row of each original row, or -1
	pairs []int   // output slot of each pair
	units []string
	req   pb.ForwardRequest
	sreq  pb.ForwardStreamRequest
	buf   []byte // req.Activations
	call  streamCall
	err   error // of this round
}

// Forward implements model.Experts. A call that fails is resent, for the
// pairs it carried, to other ready replicas; a unit with none is waited for
// (the controller places it again) up to unitWait. Forward is a pure
// function of its inputs, so resending cannot change the result.
func (d *dispatcher) Forward(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) error {
	return d.Start(ctx, layer, x, n, experts, out).Wait()
}

// Start implements model.AsyncExperts: it sends every node its rows and
// returns; Wait collects the answers (and resends what failed).
func (d *dispatcher) Start(ctx context.Context, layer int, x []float32, n int, experts []int32, out []float32) model.Pending {
	c := d.dispatches.Get()
	if c.failed == nil {
		c.failed, c.byNode = map[string]bool{}, map[string]int{}
	}
	c.d, c.ctx, c.layer, c.x, c.n, c.experts, c.out = d, ctx, layer, x, n, experts, out
	c.deadline = time.Now().Add(d.unitWait)
	c.pending = c.pending[:0]
	for s := range experts {
		c.pending = append(c.pending, s)
	}
	c.send() // a unit without a replica is waited for in Wait
	return c
}

// dispatch is one Forward: the pairs still to compute and the round of
// calls in flight. In steady state it allocates nothing: a finished one
// goes back to dispatcher.dispatches with its buffers.
type dispatch struct {
	d        *dispatcher
	ctx      context.Context
	layer, n int
	x, out   []float32
	experts  []int32
	pending  []int           // output slots not yet computed
	retry    []int           // the next round's, while a round is collected
	failed   map[string]bool // nodes that failed during this call (forgotten when it waits)
	deadline time.Time       // for a unit with no ready replica
	reps     []string        // plan's scratch
	byNode   map[string]int  // plan's index: node → its call in calls

	// The round in flight (sent is false when there is none): the first
	// ncalls of calls.
	sent      bool
	calls     []*nodeCall
	ncalls    int
	callStart time.Time
}

// send plans the pending pairs and, if every unit has a usable replica,
// sends every node its rows, all nodes working at once; otherwise it sends
// nothing and returns the units without one.
func (c *dispatch) send() (missing []string) {
	d, E := c.d, c.d.embd
	if missing := c.plan(); len(missing) > 0 {
		return missing
	}
	c.callStart = time.Now()
	deadline := c.callStart.Add(d.timeout) // bounds opening a stream
	for _, nc := range c.calls[:c.ncalls] {
		nc.req.Rows = uint32(len(nc.rows))
		nc.buf = nc.buf[:0]
		for _, r := range nc.rows {
			nc.buf = pb.EncodeRows(nc.buf, d.enc, c.x[r*E:(r+1)*E])
		}
		nc.req.Activations = nc.buf
		nc.sreq.Request = &nc.req
		nc.err = nc.conn.stream.start(c.ctx, deadline, &nc.call, &nc.sreq)
	}
	c.sent = true
	d.pool.Rest()
	return nil
}

// Wait implements model.Pending.
func (c *dispatch) Wait() error {
	d := c.d
	for len(c.pending) > 0 {
		for !c.sent {
			missing := c.send()
			if len(missing) == 0 {
				break
			}
			if time.Now().After(c.deadline) {
				d.mu.RLock()
				why := d.why(missing[0])
				d.mu.RUnlock()
				c.release()
				return fmt.Errorf("%w: unit %s has no ready replica after waiting %v (%s)", errUnavailable, missing[0], d.unitWait, why)
			}
			// A node that failed is avoided while it is suspected; a unit
			// whose every replica failed is tried on them again after that.
			clear(c.failed)
			select { // the controller is placing it again: wait
			case <-c.ctx.Done():
				c.release()
				return c.ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		c.retry = c.retry[:0]
		for _, nc := range c.calls[:c.ncalls] {
			if nc.err == nil {
				nc.err = d.finish(c.ctx, nc, c.callStart, c.layer, c.out)
			}
			if nc.err == nil {
				continue
			}
			if c.ctx.Err() != nil {
				return c.ctx.Err() // not released: calls may still be answered
			}
			d.log.Warn("expert call failed; resending to other replicas", "node", nc.node, "layer", c.layer, "units", strings.Join(nc.units, ","), "err", nc.err)
			d.suspect(nc.node)
			d.stats.RecordRetry(nc.node)
			c.failed[nc.node] = true
			c.retry = append(c.retry, nc.pairs...)
		}
		c.pending, c.retry = c.retry, c.pending
		c.sent = false
	}
	c.release()
	return nil
}

// release drops the caller's buffers and returns c, whose calls have all
// been answered, to the dispatcher for its next Forward.
func (c *dispatch) release() {
	d := c.d
	c.d, c.ctx, c.x, c.out, c.experts = nil, nil, nil, nil, nil
	clear(c.failed)
	for _, nc := range c.calls {
		nc.conn, nc.req.Activations, nc.sreq.Request = nil, nil, nil
	}
	d.dispatches.Put(c)
}

// plan assigns each pending slot to a usable replica, skipping failed
// nodes, as the first ncalls of calls, and lists the units that have none.
func (c *dispatch) plan() (missing []string) {
	d := c.d
	c.ncalls = 0
	clear(c.byNode)
	offset := d.rr.Add(1)
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, s := range c.pending {
		e := c.experts[s]
		key := d.keys[c.layer][e]
		c.reps = d.replicas(c.reps[:0], key, c.failed)
		if len(c.reps) == 0 {
			if !slices.Contains(missing, key) {
				missing = append(missing, key)
			}
			continue
		}
		// Rows of a unit with several replicas are spread over them.
		nc := c.call(c.reps[placement.Spread(offset, s/d.perRow, len(c.reps))])
		row := s / d.perRow
		li := nc.local[row]
		if li < 0 {
			li = int32(len(nc.rows))
			nc.local[row] = li
			nc.rows = append(nc.rows, row)
		}
		nc.req.PairRows = append(nc.req.PairRows, uint32(li))
		nc.req.PairExperts = append(nc.req.PairExperts, uint32(e))
		nc.pairs = append(nc.pairs, s)
		if !slices.Contains(nc.units, key) {
			nc.units = append(nc.units, key)
		}
	}
	return missing
}

// call returns this round's call to node, starting it if it is the
// first pair for node. Must hold d.mu.
func (c *dispatch) call(node string) *nodeCall {
	if i, ok := c.byNode[node]; ok {
		return c.calls[i]
	}
	if c.ncalls == len(c.calls) {
		c.calls = append(c.calls, new(nodeCall))
	}
	nc := c.calls[c.ncalls]
	c.byNode[node] = c.ncalls
	c.ncalls++
	d := c.d
	nc.node, nc.conn = node, d.conns[node]
	nc.rows, nc.pairs, nc.units = nc.rows[:0], nc.pairs[:0], nc.units[:0]
	nc.local = slices.Grow(nc.local[:0], c.n)[:c.n]
	for i := range nc.local {
		nc.local[i] = -1
	}
	nc.req = pb.ForwardRequest{ModelDigest: d.digest, Layer: uint32(c.layer), RowSize: uint32(d.embd), Encoding: d.enc,
		PairRows: nc.req.PairRows[:0], PairExperts: nc.req.PairExperts[:0]}
	return nc
}

// finish waits for a node's answer and writes its outputs into out.
func (d *dispatcher) finish(ctx context.Context, c *nodeCall, start time.Time, layer int, out []float32) error {
	E := d.embd
	d.mu.RLock()
	down := c.conn.down
	d.mu.RUnlock()
	r := c.call.wait(ctx, down, start.Add(d.timeout))
	defer c.call.s.release(r)
	took := r.at.Sub(start)
	d.stats.RecordCall(c.node, len(c.rows), len(c.req.Activations), len(r.resp.GetOutputs()), took, r.err != nil)
	d.metrics.call(c.node, took, r.err != nil)
	if r.err != nil {
		return fmt.Errorf("expert node %s failed serving units %s of layer %d: %w", c.node, strings.Join(c.units, ", "), layer, r.err)
	}
	// Each pair's row goes straight to its slot of out.
	enc, b := r.resp.Encoding, r.resp.Outputs
	row := enc.RowBytes(E)
	if row == 0 || len(b) != len(c.pairs)*row {
		return fmt.Errorf("expert node %s: bad response: %d bytes of %s outputs for %d rows of %d values", c.node, len(b), enc, len(c.pairs), E)
	}
	for i, s := range c.pairs {
		if _, err := pb.DecodeRowsInto(out[s*E:(s+1)*E], b[i*row:(i+1)*row], enc, E); err != nil {
			return fmt.Errorf("expert node %s: bad response: %w", c.node, err)
		}
	}
	return nil
}

// membershipChanged abandons calls in flight to nodes gossip says are
// dead, and forgets nodes that are neither registered nor alive. It runs
// on the coordinator's goroutine that reads membership.Members.Changed,
// never on memberlist's; connections are closed outside the lock.
func (d *dispatcher) membershipChanged() {
	if d.members == nil {
		return
	}
	var abandon []context.CancelFunc
	d.mu.Lock()
	for id, c := range d.conns {
		if d.members.Known(id) && !d.members.Alive(id) && c.down.Err() == nil {
			d.log.Warn("expert node declared dead by gossip; abandoning its calls", "node", id)
			abandon = append(abandon, c.fail)
		} else if d.members.Alive(id) && c.down.Err() != nil {
			c.down, c.fail = context.WithCancel(context.Background())
		}
	}
	stale := d.reconcile()
	d.mu.Unlock()
	for _, fail := range abandon {
		fail()
	}
	closeConns(stale)
}

// suspect keeps a node that just failed out of routing for a while, until
// gossip or a fresh status says otherwise.
func (d *dispatcher) suspect(node string) {
	d.mu.Lock()
	d.suspects[node] = time.Now().Add(d.suspectFor)
	d.mu.Unlock()
}

// why says, for each node a unit is placed on, why it cannot serve it.
// Must hold d.mu.
func (d *dispatcher) why(key string) string {
	placed := d.pmap.Units[key]
	if len(placed) == 0 {
		return "not placed on any node"
	}
	var parts []string
	for _, n := range placed {
		switch {
		case d.members != nil && d.members.Known(n) && !d.members.Alive(n), time.Now().Before(d.suspects[n]):
			parts = append(parts, "node "+n+" is down")
		case d.conns[n] == nil:
			parts = append(parts, "node "+n+" is not registered")
		default:
			parts = append(parts, "node "+n+" has not loaded it")
		}
	}
	return strings.Join(parts, "; ")
}
