// Package placement is the cluster's shared state in etcd: what model is
// served, which expert nodes and coordinators exist, where every expert
// unit is placed, and what each node has loaded. It holds the key schema,
// the records, and the policy that spreads units over nodes.
//
// Keys, under /switchyard/<cluster>/:
//
//	model               ModelInfo, written by the elected coordinator
//	nodes/<id>          Node, under the node's lease
//	placement           Map, written only by the elected coordinator; past
//	                    ShardBytes, a manifest naming the shards below
//	units/<epoch>/<i>   a shard of a large placement's units (Map)
//	status/<id>         Status, under the node's lease
//	coordinators/<id>   Coordinator, under the coordinator's lease
//	election/           the coordinators' leader election
//	drain/<id>          a request that node <id> drain and exit
//	history/<epoch>     Change: why each placement epoch was written
//
// The elected coordinator writes model, placement and history only in etcd
// transactions fenced on its election key (Fence), so a deposed leader
// cannot write. A placement larger than ShardBytes (DeepSeek-V3's 14,848
// units over hundreds of nodes would pass etcd's 1.5 MiB request limit) is
// written as epoch-named shard keys first, then a small manifest at
// placement is flipped to them in the fenced transaction that writes the
// history; readers (GetPlacement, WatchPlacement) read the shards at the
// manifest's revision, so they never see half of two epochs. Watch notices when etcd lost its data (its revision went
// back) and lists afresh instead of waiting on a revision that no longer
// exists.
package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
	// Shards is, in a manifest, how many keys under Keys.Shards(Epoch) hold
	// the placement's Units and Want; 0 when they are inline. Maps that
	// GetPlacement and WatchPlacement return always have them inline.
	Shards int `json:"shards,omitempty"`
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

// ShardsPrefix holds the shards of large placements, by epoch.
func (k Keys) ShardsPrefix() string { return k.prefix + "units/" }

// Shards is the prefix of one epoch's shards.
func (k Keys) Shards(epoch int64) string { return fmt.Sprintf("%s%020d/", k.ShardsPrefix(), epoch) }

// Shard is shard i of an epoch.
func (k Keys) Shard(epoch int64, i int) string { return fmt.Sprintf("%s%06d", k.Shards(epoch), i) }

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
	// Omitted counts the reasons left out to keep the record under
	// HistoryBytes (an initial placement gives one per unit).
	Omitted int `json:"omitted,omitempty"`
}

// Size limits of what the store writes. etcd refuses requests over 1.5 MiB
// by default (--max-request-bytes); a placement transaction carries the
// manifest (or the whole placement when it fits in one shard), the history
// record and a few deletes.
const (
	// DefaultShardBytes bounds a placement written inline, and each shard
	// of a larger one.
	DefaultShardBytes = 512 << 10
	// HistoryBytes bounds the reasons kept in a history record.
	HistoryBytes = 128 << 10
	// maxShards bounds the shards a reader accepts: 4096 × 512 KiB is 2 GiB.
	maxShards = 4096
)

// Store reads and writes the schema through an etcd client. While any
// Watch runs it also keeps a view of etcd itself (EtcdState).
type Store struct {
	C *clientv3.Client
	Keys
	// ShardBytes bounds a placement written inline and each of its shards;
	// 0 means DefaultShardBytes.
	ShardBytes int
	view       view
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
	watch(ctx, s, prefix, func(ctx context.Context) (int64, error) {
		vals, rev, err := list[T](ctx, s, prefix)
		if err == nil {
			fn(vals)
		}
		return rev, err
	})
}

// WatchPlacement is Watch for the placement: fn gets it with its units
// inline (read from its shards when it has any), or a zero Map while etcd
// holds none.
func WatchPlacement(ctx context.Context, s *Store, fn func(Map)) {
	watch(ctx, s, s.Placement(), func(ctx context.Context) (int64, error) {
		m, rev, err := s.readPlacement(ctx)
		switch {
		case errors.Is(err, ErrNotFound):
			fn(Map{})
			return rev, nil
		case err == nil:
			fn(m)
		}
		return rev, err
	})
}

// watch runs read (which reads what is under prefix, hands it on and
// returns the revision it read at) now and after every change under
// prefix, until ctx ends.
func watch(ctx context.Context, s *Store, prefix string, read func(context.Context) (int64, error)) {
	defer s.watching()()
	for ctx.Err() == nil {
		lost := s.view.lostSignal()
		rev, err := read(ctx)
		if err != nil {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		ch := s.C.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	watching:
		for {
			select {
			case resp, ok := <-ch:
				if !ok || resp.Err() != nil {
					break watching
				}
				if _, err := read(ctx); err != nil {
					break watching
				}
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
//
// A placement whose encoding passes ShardBytes is written as shards under
// Shards(m.Epoch), each in a fenced write of its own, and the transaction
// writes a manifest at Placement instead, deleting every other epoch's
// shards. Until that transaction commits readers see the previous epoch
// whole; a leader deposed between the shards and the manifest leaves
// shards that no manifest names, deleted by the next epoch written.
// Reasons past HistoryBytes are left out of the history record (counted
// in its Omitted).
func (s *Store) Publish(ctx context.Context, f Fence, m Map, why Change, kept int64) error {
	if len(m.Units) == 0 {
		return fmt.Errorf("placement: refusing to publish epoch %d: it places no units", m.Epoch)
	}
	what := fmt.Sprintf("publish placement epoch %d", m.Epoch)
	manifest, shards, err := s.EncodePlacement(m)
	if err != nil {
		return fmt.Errorf("placement: %s: %w", what, err)
	}
	ch, err := json.Marshal(boundHistory(why, HistoryBytes))
	if err != nil {
		return fmt.Errorf("placement: encode history of epoch %d: %w", m.Epoch, err)
	}
	if len(shards) > 0 {
		// Shards a deposed leader left at this epoch go first.
		if err := s.fenced(ctx, f, what+": clear its shard keys", clientv3.OpDelete(s.Shards(m.Epoch), clientv3.WithPrefix())); err != nil {
			return err
		}
		for i, b := range shards {
			if err := s.fenced(ctx, f, fmt.Sprintf("%s: shard %d of %d", what, i+1, len(shards)), clientv3.OpPut(s.Shard(m.Epoch, i), string(b))); err != nil {
				return err
			}
		}
	}
	ops := []clientv3.Op{clientv3.OpPut(s.Placement(), string(manifest)), clientv3.OpPut(s.History(m.Epoch), string(ch))}
	if kept > 0 && m.Epoch > kept {
		ops = append(ops, clientv3.OpDelete(s.History(m.Epoch-kept)))
	}
	// Every other epoch's shards go: earlier ones, and later ones a deposed
	// leader wrote without flipping the manifest to them.
	end := clientv3.GetPrefixRangeEnd(s.ShardsPrefix())
	if len(shards) > 0 {
		ops = append(ops, clientv3.OpDelete(s.ShardsPrefix(), clientv3.WithRange(s.Shards(m.Epoch))),
			clientv3.OpDelete(clientv3.GetPrefixRangeEnd(s.Shards(m.Epoch)), clientv3.WithRange(end)))
	} else {
		ops = append(ops, clientv3.OpDelete(s.ShardsPrefix(), clientv3.WithRange(end)))
	}
	return s.fenced(ctx, f, what, ops...)
}

func (s *Store) shardBytes() int {
	if s.ShardBytes > 0 {
		return s.ShardBytes
	}
	return DefaultShardBytes
}

// EncodePlacement is m as Publish writes it: inline (shards is nil) when
// its encoding fits in ShardBytes; otherwise a manifest and shards of at
// most ShardBytes each, holding m's units in layer and expert order with
// their Want entries.
func (s *Store) EncodePlacement(m Map) (manifest []byte, shards [][]byte, err error) {
	m.Shards = 0
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode: %w", err)
	}
	limit := s.shardBytes()
	if len(b) <= limit {
		return b, nil, nil
	}
	keys := make([]string, 0, len(m.Units))
	for k := range m.Units {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUnitKeys)
	// Pack by an estimate of each entry's encoding; a shard whose real
	// encoding is over the limit anyway is split in two.
	var pack func(keys []string) error
	pack = func(keys []string) error {
		sh := Map{Epoch: m.Epoch, Digest: m.Digest, Units: make(map[string][]string, len(keys))}
		for _, k := range keys {
			sh.Units[k] = m.Units[k]
			if w, ok := m.Want[k]; ok {
				if sh.Want == nil {
					sh.Want = map[string]int{}
				}
				sh.Want[k] = w
			}
		}
		b, err := json.Marshal(sh)
		switch {
		case err != nil:
			return fmt.Errorf("encode shard: %w", err)
		case len(b) <= limit:
			shards = append(shards, b)
			return nil
		case len(keys) == 1:
			return fmt.Errorf("unit %s alone encodes to %d bytes, over the shard limit of %d", keys[0], len(b), limit)
		}
		if err := pack(keys[:len(keys)/2]); err != nil {
			return err
		}
		return pack(keys[len(keys)/2:])
	}
	budget := limit - 256 // the shard's epoch, digest and braces
	start, size := 0, 0
	for i, k := range keys {
		n := len(k) + 8 // "k":[…], and "k":w in Want
		for _, id := range m.Units[k] {
			n += len(id) + 3
		}
		if size+n > budget && i > start {
			if err := pack(keys[start:i]); err != nil {
				return nil, nil, err
			}
			start, size = i, 0
		}
		size += n
	}
	if err := pack(keys[start:]); err != nil {
		return nil, nil, err
	}
	if len(shards) > maxShards {
		return nil, nil, fmt.Errorf("%d shards, over the limit of %d", len(shards), maxShards)
	}
	manifest, err = json.Marshal(Map{Epoch: m.Epoch, Digest: m.Digest, Shards: len(shards)})
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest: %w", err)
	}
	return manifest, shards, nil
}

// compareUnitKeys orders unit keys by layer, then expert; keys that do
// not parse go last, in string order.
func compareUnitKeys(a, b string) int {
	ua, ea := ParseUnitKey(a)
	ub, eb := ParseUnitKey(b)
	switch {
	case ea != nil || eb != nil:
		if (ea == nil) != (eb == nil) {
			if ea == nil {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case ua.Layer != ub.Layer:
		return ua.Layer - ub.Layer
	default:
		return ua.Expert - ub.Expert
	}
}

// boundHistory keeps the reasons of c that fit in about limit bytes and
// counts the rest in Omitted.
func boundHistory(c Change, limit int) Change {
	size := 0
	for i, r := range c.Reasons {
		size += len(r) + 3
		if size > limit {
			c.Omitted += len(c.Reasons) - i
			c.Reasons = c.Reasons[:i]
			break
		}
	}
	return c
}

// GetPlacement reads the placement, with its units inline whether it was
// written inline or in shards. It returns ErrNotFound when etcd holds none.
func (s *Store) GetPlacement(ctx context.Context) (Map, error) {
	m, _, err := s.readPlacement(ctx)
	return m, err
}

// readPlacement is GetPlacement plus the revision it read at. Shards are
// read at the manifest's revision: what the manifest named then, even if
// a newer epoch replaced them since.
func (s *Store) readPlacement(ctx context.Context) (Map, int64, error) {
	key := s.Placement()
	r, err := s.C.Get(ctx, key)
	if err != nil {
		return Map{}, 0, fmt.Errorf("placement: get %s: %w", key, err)
	}
	rev := r.Header.Revision
	if len(r.Kvs) == 0 {
		return Map{}, rev, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	var m Map
	if err := json.Unmarshal(r.Kvs[0].Value, &m); err != nil {
		return Map{}, rev, fmt.Errorf("placement: decode %s: %w", key, err)
	}
	if m.Shards == 0 {
		return m, rev, nil
	}
	if m.Shards < 0 || m.Shards > maxShards {
		return Map{}, rev, fmt.Errorf("placement: manifest of epoch %d names %d shards (limit %d)", m.Epoch, m.Shards, maxShards)
	}
	prefix := s.Shards(m.Epoch)
	sr, err := s.C.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return Map{}, rev, fmt.Errorf("placement: read the %d shards of epoch %d: %w", m.Shards, m.Epoch, err)
	}
	if len(sr.Kvs) != m.Shards {
		return Map{}, rev, fmt.Errorf("placement: epoch %d has %d shards in etcd, its manifest names %d", m.Epoch, len(sr.Kvs), m.Shards)
	}
	m.Units, m.Shards = map[string][]string{}, 0
	for _, kv := range sr.Kvs {
		var sh Map
		if err := json.Unmarshal(kv.Value, &sh); err != nil {
			return Map{}, rev, fmt.Errorf("placement: decode %s: %w", kv.Key, err)
		}
		if sh.Epoch != m.Epoch {
			return Map{}, rev, fmt.Errorf("placement: shard %s is of epoch %d, its manifest's is %d", kv.Key, sh.Epoch, m.Epoch)
		}
		maps.Copy(m.Units, sh.Units)
		if len(sh.Want) > 0 {
			if m.Want == nil {
				m.Want = map[string]int{}
			}
			maps.Copy(m.Want, sh.Want)
		}
	}
	return m, rev, nil
}
