// Package placement is the cluster's shared state in etcd: what model is
// served, which expert nodes and coordinators exist, where every expert
// unit is placed, and what each node has loaded. It holds the key schema,
// the records, and the policy that spreads units over nodes.
//
// Keys, under /switchyard/<cluster>/:
//
//	model               ModelInfo, written by the elected coordinator
//	nodes/<id>          Node, under the node's lease
//	placement           Map, written only by the elected coordinator
//	status/<id>         Status, under the node's lease
//	coordinators/<id>   Coordinator, under the coordinator's lease
//	election/           the coordinators' leader election
//	drain/<id>          a request that node <id> drain and exit
//	history/<epoch>     Change: why each placement epoch was written
//
// The elected coordinator writes model, placement and history only in etcd
// transactions fenced on its election key (Fence), so a deposed leader
// cannot write. Watch notices when etcd lost its data (its revision went
// back) and lists afresh instead of waiting on a revision that no longer
// exists.
package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/switchyard-llm/switchyard/pkg/model"
)

// ErrNotFound is returned when a key is absent.
var ErrNotFound = errors.New("placement: not found")

// ErrNotLeader is returned by a fenced write whose writer no longer holds
// the leadership it was elected with: its election key is gone.
var ErrNotLeader = errors.New("placement: not the leader")

// ModelInfo describes the served model.
type ModelInfo struct {
	Name        string       `json:"name"`
	Arch        string       `json:"arch"`
	Digest      string       `json:"digest"`
	Layers      int          `json:"layers"`
	Experts     int          `json:"experts"`
	ExpertsUsed int          `json:"experts_used"`
	Vocab       int          `json:"vocab"`
	Context     int          `json:"context"`
	Census      model.Census `json:"census"`
	// ChatTemplate names the chat template in use: "gguf" (the file's own),
	// "plain" (the documented fallback) or "" (none: chat requests fail).
	ChatTemplate string `json:"chat_template"`
	// MoELayers lists, in order, the layers with routed experts; the
	// others have a dense FFN and no units. Absent (in records written
	// before it existed) means every layer.
	MoELayers []int `json:"moe_layers,omitempty"`
}

// MoELayer reports whether layer l has routed experts.
func (m ModelInfo) MoELayer(l int) bool {
	return l >= 0 && l < m.Layers && (m.MoELayers == nil || slices.Contains(m.MoELayers, l))
}

// Units lists the model's units of placement, by layer then expert: every
// expert of every MoE layer.
func (m ModelInfo) Units() []model.Unit {
	var out []model.Unit
	for l := range m.Layers {
		if !m.MoELayer(l) {
			continue
		}
		for e := range m.Experts {
			out = append(out, model.Unit{Layer: l, Expert: e})
		}
	}
	return out
}

// Node is an expert node's registration.
type Node struct {
	ID            string `json:"id"`
	Addr          string `json:"addr"`        // gRPC host:port
	GossipAddr    string `json:"gossip_addr"` // memberlist host:port
	CapacityBytes int64  `json:"capacity_bytes"`
	// Draining asks the controller to move the node's units away (set by
	// the node on SIGTERM).
	Draining bool `json:"draining,omitempty"`
}

// Coordinator is a coordinator's registration.
type Coordinator struct {
	ID         string `json:"id"`
	Addr       string `json:"addr"`
	GossipAddr string `json:"gossip_addr"`
}

// Map is a placement: the nodes each unit is placed on.
type Map struct {
	Epoch int64 `json:"epoch"`
	// Digest is the model file's digest (ModelInfo.Digest) the placement
	// is for; absent in records written before it existed.
	Digest string              `json:"digest,omitempty"`
	Units  map[string][]string `json:"units"` // UnitKey → node IDs
	// Want is the replica count of units that should have more than the
	// base (hot units), by UnitKey.
	Want map[string]int `json:"want,omitempty"`
}

// Status is what a node has loaded and can serve.
type Status struct {
	NodeID string   `json:"node_id"`
	Digest string   `json:"digest"`
	Epoch  int64    `json:"epoch"` // the placement epoch it reflects
	Ready  []string `json:"ready"` // UnitKeys
}

// UnitKey is a unit's key in Map and Status: "layer/expert".
func UnitKey(u model.Unit) string { return fmt.Sprintf("%d/%d", u.Layer, u.Expert) }

// ParseUnitKey is the inverse of UnitKey.
func ParseUnitKey(s string) (model.Unit, error) {
	a, b, ok := strings.Cut(s, "/")
	l, err1 := strconv.Atoi(a)
	e, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || l < 0 || e < 0 {
		return model.Unit{}, fmt.Errorf("placement: bad unit key %q", s)
	}
	return model.Unit{Layer: l, Expert: e}, nil
}

// UnitsOf lists the units a node is placed on, sorted.
func (m Map) UnitsOf(node string) []model.Unit {
	var out []model.Unit
	for k, nodes := range m.Units {
		if slices.Contains(nodes, node) {
			if u, err := ParseUnitKey(k); err == nil {
				out = append(out, u)
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Unit) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return a.Expert - b.Expert
	})
	return out
}

// Keys builds the etcd keys of one cluster.
type Keys struct{ prefix string }

// NewKeys returns the keys of cluster name.
func NewKeys(cluster string) Keys { return Keys{"/switchyard/" + cluster + "/"} }

func (k Keys) Model() string              { return k.prefix + "model" }
func (k Keys) Placement() string          { return k.prefix + "placement" }
func (k Keys) NodesPrefix() string        { return k.prefix + "nodes/" }
func (k Keys) Node(id string) string      { return k.NodesPrefix() + id }
func (k Keys) StatusPrefix() string       { return k.prefix + "status/" }
func (k Keys) Status(id string) string    { return k.StatusPrefix() + id }
func (k Keys) CoordinatorsPrefix() string { return k.prefix + "coordinators/" }
func (k Keys) Coordinator(id string) string {
	return k.CoordinatorsPrefix() + id
}
func (k Keys) Election() string { return k.prefix + "election/" }

// DrainPrefix holds drain requests: drain/<id> asks node id to drain and exit.
func (k Keys) DrainPrefix() string    { return k.prefix + "drain/" }
func (k Keys) Drain(id string) string { return k.DrainPrefix() + id }
func (k Keys) HistoryPrefix() string  { return k.prefix + "history/" }
func (k Keys) History(epoch int64) string {
	return fmt.Sprintf("%s%020d", k.HistoryPrefix(), epoch)
}

// Change records why a placement epoch was written.
type Change struct {
	Epoch   int64     `json:"epoch"`
	Time    time.Time `json:"time"`
	By      string    `json:"by"` // the coordinator that wrote it
	Reasons []string  `json:"reasons"`
}

// Store reads and writes the schema through an etcd client. While any
// Watch runs it also keeps a view of etcd itself (EtcdState).
type Store struct {
	C *clientv3.Client
	Keys
	view view
}

// NewStore uses client c for cluster name.
func NewStore(c *clientv3.Client, cluster string) *Store { return &Store{C: c, Keys: NewKeys(cluster)} }

// Put writes v as JSON at key, under lease (0 for none).
func (s *Store) Put(ctx context.Context, key string, v any, lease clientv3.LeaseID) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	if _, err := s.C.Put(ctx, key, string(b), opts...); err != nil {
		return fmt.Errorf("placement: put %s: %w", key, err)
	}
	return nil
}

// Get reads the JSON value at key into v.
func (s *Store) Get(ctx context.Context, key string, v any) error {
	r, err := s.C.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("placement: get %s: %w", key, err)
	}
	if len(r.Kvs) == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err := json.Unmarshal(r.Kvs[0].Value, v); err != nil {
		return fmt.Errorf("placement: decode %s: %w", key, err)
	}
	return nil
}

// List decodes every value under prefix, keyed by the rest of the key.
func List[T any](ctx context.Context, s *Store, prefix string) (map[string]T, error) {
	vals, _, err := list[T](ctx, s, prefix)
	return vals, err
}

// list is List plus the store revision the values were read at.
func list[T any](ctx context.Context, s *Store, prefix string) (map[string]T, int64, error) {
	r, err := s.C.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("placement: list %s: %w", prefix, err)
	}
	out := map[string]T{}
	for _, kv := range r.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, 0, fmt.Errorf("placement: decode %s: %w", kv.Key, err)
		}
		out[strings.TrimPrefix(string(kv.Key), prefix)] = v
	}
	return out, r.Header.Revision, nil
}

// Watch calls fn with the decoded values under prefix now and after every
// change, until ctx ends. Watching resumes from the revision of the last
// read, so no change is missed; after a watch error, or when etcd is found
// to have lost its data (its revision went back: the revision watched from
// may never come), it reads afresh. fn runs on Watch's goroutine; after
// etcd lost its data it may be called with what little etcd holds then.
func Watch[T any](ctx context.Context, s *Store, prefix string, fn func(map[string]T)) {
	defer s.watching()()
	for ctx.Err() == nil {
		lost := s.view.lostSignal()
		vals, rev, err := list[T](ctx, s, prefix)
		if err != nil {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		fn(vals)
		wctx, cancel := context.WithCancel(ctx)
		ch := s.C.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	watching:
		for {
			select {
			case resp, ok := <-ch:
				if !ok || resp.Err() != nil {
					break watching
				}
				vals, _, err := list[T](ctx, s, prefix)
				if err != nil {
					break watching
				}
				fn(vals)
			case <-lost:
				break watching
			}
		}
		cancel()
		sleep(ctx, 200*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Lease is a registration kept alive until Close. If the lease is lost
// (etcd was away longer than its TTL, or lost its data), it is granted
// again and the value written again, and the onRenew given to Register
// (when not nil) runs so that other keys under the lease can be written
// again too.
type Lease struct {
	id      atomic.Int64
	cancel  context.CancelFunc
	done    chan struct{}
	s       *Store
	key     string
	onRenew func(ctx context.Context, id clientv3.LeaseID)

	mu sync.Mutex
	v  any // the value written at key, again on every renewal
}

// ID is the current lease.
func (l *Lease) ID() clientv3.LeaseID { return clientv3.LeaseID(l.id.Load()) }

// Register grants a lease of ttl seconds, writes v at key under it and
// keeps both alive in the background until Close. onRenew, when not nil,
// runs on the keep-alive goroutine after the lease was lost and granted
// again (with the new lease), so that other keys under it can be written
// again; it must return once its ctx ends.
func (s *Store) Register(ctx context.Context, key string, v any, ttl int64, onRenew func(ctx context.Context, id clientv3.LeaseID)) (*Lease, error) {
	l := &Lease{s: s, key: key, v: v, onRenew: onRenew, done: make(chan struct{})}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	// grant bounds granting and writing by ctx; the keep-alive lasts until Close.
	grant := func(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
		g, err := s.C.Grant(ctx, ttl)
		if err != nil {
			return nil, fmt.Errorf("placement: lease for %s: %w", key, err)
		}
		l.mu.Lock()
		v := l.v
		l.mu.Unlock()
		if err := s.Put(ctx, key, v, g.ID); err != nil {
			return nil, err
		}
		l.id.Store(int64(g.ID))
		ch, err := s.C.KeepAlive(kctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("placement: keep lease for %s alive: %w", key, err)
		}
		return ch, nil
	}
	ch, err := grant(ctx)
	if err != nil {
		cancel()
		close(l.done)
		return nil, err
	}
	go func() {
		defer close(l.done)
		for {
			for range ch {
			}
			// The keep-alive ended: either Close, or the lease was lost.
			for kctx.Err() == nil {
				var err error
				if ch, err = grant(kctx); err == nil {
					if l.onRenew != nil {
						l.onRenew(kctx, l.ID())
					}
					break
				}
				sleep(kctx, time.Second)
			}
			if kctx.Err() != nil {
				return
			}
		}
	}()
	return l, nil
}

// Put writes v at the lease's key under the lease, and keeps it as the
// value written again if the lease is renewed.
func (l *Lease) Put(ctx context.Context, v any) error {
	l.mu.Lock()
	l.v = v
	l.mu.Unlock()
	return l.s.Put(ctx, l.key, v, l.ID())
}

// Close stops the keep-alive and revokes the lease, removing its keys.
func (l *Lease) Close(ctx context.Context) {
	l.cancel()
	<-l.done
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l.s.C.Revoke(rctx, l.ID())
}

// Fence is the leadership a write is conditioned on: the key the leader
// campaigned with and that key's creation revision
// (concurrency.Election's Key and Rev). The key lives as long as the
// leader's election session; once it is gone (the session ended, a newer
// leader was elected, etcd lost its data) a fenced write fails with
// ErrNotLeader.
type Fence struct {
	Key string
	Rev int64
}

// fenced commits ops only if f still holds.
func (s *Store) fenced(ctx context.Context, f Fence, what string, ops ...clientv3.Op) error {
	if f.Key == "" || f.Rev == 0 {
		return fmt.Errorf("placement: %s: no election fence", what)
	}
	r, err := s.C.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("placement: %s: %w", what, err)
	}
	if !r.Succeeded {
		return fmt.Errorf("%w: %s refused: election key %s of revision %d is gone", ErrNotLeader, what, f.Key, f.Rev)
	}
	return nil
}

// PutFenced writes v as JSON at key (without a lease) if f still holds.
func (s *Store) PutFenced(ctx context.Context, f Fence, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("placement: encode %s: %w", key, err)
	}
	return s.fenced(ctx, f, "put "+key, clientv3.OpPut(key, string(b)))
}

// Publish writes placement m and the record of why it changed as one
// transaction fenced on f, deleting the history record kept epochs older.
// It refuses a placement with no units: no model has none, and a leader
// that computed one is wrong, not the cluster.
func (s *Store) Publish(ctx context.Context, f Fence, m Map, why Change, kept int64) error {
	if len(m.Units) == 0 {
		return fmt.Errorf("placement: refusing to publish epoch %d: it places no units", m.Epoch)
	}
	pm, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("placement: encode epoch %d: %w", m.Epoch, err)
	}
	ch, err := json.Marshal(why)
	if err != nil {
		return fmt.Errorf("placement: encode history of epoch %d: %w", m.Epoch, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.Placement(), string(pm)), clientv3.OpPut(s.History(m.Epoch), string(ch))}
	if kept > 0 && m.Epoch > kept {
		ops = append(ops, clientv3.OpDelete(s.History(m.Epoch-kept)))
	}
	return s.fenced(ctx, f, fmt.Sprintf("publish placement epoch %d", m.Epoch), ops...)
}
