package placement

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// bigMap places DeepSeek-V3's 14,848 units on nodes with names as long as
// a cluster's host names, replicas times each, with hot units wanting more.
func bigMap(epoch int64, nodes, replicas int) Map {
	m := Map{Epoch: epoch, Digest: "sha256:deepseek", Units: map[string][]string{}, Want: map[string]int{}}
	i := 0
	for _, u := range deepSeekV3().Units() {
		key := UnitKey(u)
		for r := range replicas {
			m.Units[key] = append(m.Units[key], fmt.Sprintf("expert-node-%03d.rack-%02d.example.internal", (i+r)%nodes, (i+r)%nodes/16))
		}
		if u.Expert < 32 {
			m.Want[key] = replicas + 1
		}
		i++
	}
	return m
}

// DeepSeek-V3's placement with three replicas on 256 nodes is over etcd's
// default 1.5 MiB request limit: a plain put of it is refused by the real
// (embedded) etcd. Publish shards it; GetPlacement and WatchPlacement read
// back exactly what was published, and every request stayed under the
// limit (etcd would have refused it otherwise).
func TestPublishShardsWhatEtcdWouldRefuse(t *testing.T) {
	_, client := startEtcd(t)
	s := NewStore(client(), "c")
	f, _ := elect(t, s, "a")
	m := bigMap(7, 256, 3)
	if err := s.Put(t.Context(), s.Placement(), m, 0); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("a plain put of the whole placement: got %v, want etcd to refuse it as too large", err)
	}
	why := Change{Epoch: 7, By: "a"}
	for _, u := range deepSeekV3().Units() {
		why.Reasons = append(why.Reasons, fmt.Sprintf("unit %s: replica added on expert-node-000 (below 3 replicas)", UnitKey(u)))
	}
	if err := s.Publish(t.Context(), f, m, why, 100); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got, err := s.GetPlacement(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("read back %d units (want %d entries), epoch %d; differs from what was published", len(got.Units), len(got.Want), got.Epoch)
	}
	r, err := s.C.Get(t.Context(), s.ShardsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) < 4 {
		t.Errorf("%d shard keys, want at least 4 of 512 KiB", len(r.Kvs))
	}
	var h Change
	if err := s.Get(t.Context(), s.History(7), &h); err != nil {
		t.Fatal(err)
	}
	if h.Omitted == 0 || len(h.Reasons)+h.Omitted != len(why.Reasons) {
		t.Errorf("history keeps %d reasons and omits %d, want %d in all with some omitted", len(h.Reasons), h.Omitted, len(why.Reasons))
	}
}

// shardStore is a store whose shards are small, so a test placement of a
// few hundred units takes several.
func shardStore(c *clientv3.Client) *Store {
	s := NewStore(c, "c")
	s.ShardBytes = 2 << 10
	return s
}

func smallMap(epoch int64, node string, units int) Map {
	m := Map{Epoch: epoch, Digest: "sha256:x", Units: map[string][]string{}}
	for e := range units {
		m.Units[fmt.Sprintf("%d/%d", e/64, e%64)] = []string{node, "spare-" + node}
	}
	return m
}

func shardKeys(t *testing.T, s *Store) []string {
	t.Helper()
	r, err := s.C.Get(t.Context(), s.ShardsPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range r.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), s.ShardsPrefix()))
	}
	return out
}

// Epoch after epoch, sharded and inline in turn: a watcher sees each epoch
// whole (never a mix of two), and only the current epoch's shards remain.
func TestWatchPlacementSeesWholeEpochs(t *testing.T) {
	_, client := startEtcd(t)
	s := shardStore(client())
	f, _ := elect(t, s, "a")
	ctx, cancel := context.WithCancel(t.Context())
	seen := make(chan Map, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchPlacement(ctx, NewStore(client(), "c"), func(m Map) { seen <- m })
	}()
	if m := <-seen; m.Units != nil || m.Epoch != 0 {
		t.Fatalf("before any placement the watch gave %+v, want a zero Map", m)
	}
	sizes := []int{300, 300, 3, 500, 40}
	for i, n := range sizes {
		epoch := int64(i + 1)
		m := smallMap(epoch, fmt.Sprint("n", epoch), n)
		if err := s.Publish(t.Context(), f, m, Change{Epoch: epoch}, 100); err != nil {
			t.Fatalf("publish epoch %d: %v", epoch, err)
		}
		keys := shardKeys(t, s)
		_, shards, _ := s.EncodePlacement(m)
		if len(keys) != len(shards) {
			t.Errorf("epoch %d (%d units): %d shard keys in etcd %v, want %d", epoch, n, len(keys), keys, len(shards))
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, fmt.Sprintf("%020d/", epoch)) {
				t.Errorf("epoch %d: shard key %s of another epoch remains", epoch, k)
			}
		}
	}
	if _, shards, _ := s.EncodePlacement(smallMap(1, "n1", 300)); len(shards) < 3 {
		t.Fatalf("300 units take %d shards of 2 KiB, want several", len(shards))
	}
	last := int64(0)
	for last < int64(len(sizes)) {
		select {
		case m := <-seen:
			want := smallMap(m.Epoch, fmt.Sprint("n", m.Epoch), sizes[m.Epoch-1])
			if !maps.EqualFunc(m.Units, want.Units, slices.Equal) {
				t.Errorf("the watch saw epoch %d with %d units, not as published (%d units)", m.Epoch, len(m.Units), len(want.Units))
			}
			last = m.Epoch
		case <-time.After(20 * time.Second):
			t.Fatalf("the watch did not see epoch %d", len(sizes))
		}
	}
	cancel()
	<-done
}

// A leader deposed while writing shards cannot write another, and cannot
// flip the manifest; the shards it left at a later epoch are deleted when
// the new leader publishes.
func TestShardWritesAreFenced(t *testing.T) {
	_, client := startEtcd(t)
	a, b := shardStore(client()), shardStore(client())
	fa, sessA := elect(t, a, "a")
	if err := a.Publish(t.Context(), fa, smallMap(1, "a", 300), Change{Epoch: 1}, 100); err != nil {
		t.Fatal(err)
	}
	// a begins epoch 9 (a shard written by hand, as Publish would) and is
	// deposed before it finishes.
	_, shards, err := a.EncodePlacement(smallMap(9, "a", 300))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.fenced(t.Context(), fa, "shard", clientv3.OpPut(a.Shard(9, 0), string(shards[0]))); err != nil {
		t.Fatal(err)
	}
	if _, err := a.C.Revoke(t.Context(), sessA.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(t.Context(), fa, smallMap(9, "a", 300), Change{Epoch: 9}, 100); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("the deposed leader's sharded publish: got %v, want ErrNotLeader", err)
	}
	if keys := shardKeys(t, a); !slices.Contains(keys, fmt.Sprintf("%020d/%06d", 9, 0)) {
		t.Fatalf("the deposed leader's shard is not there to be cleaned up: %v", keys)
	}
	fb, _ := elect(t, b, "b")
	if err := b.Publish(t.Context(), fb, smallMap(2, "b", 300), Change{Epoch: 2}, 100); err != nil {
		t.Fatal(err)
	}
	for _, k := range shardKeys(t, b) {
		if !strings.HasPrefix(k, fmt.Sprintf("%020d/", 2)) {
			t.Errorf("shard key %s remains after epoch 2 was published", k)
		}
	}
	m, err := b.GetPlacement(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch != 2 || m.Units["0/0"][0] != "b" || len(m.Units) != 300 {
		t.Errorf("placement is epoch %d with %d units on %v, want b's epoch 2", m.Epoch, len(m.Units), m.Units["0/0"])
	}
}

// A manifest whose shards are not all there is an error, not a partial
// placement.
func TestGetPlacementRefusesMissingShards(t *testing.T) {
	_, client := startEtcd(t)
	s := shardStore(client())
	f, _ := elect(t, s, "a")
	if err := s.Publish(t.Context(), f, smallMap(3, "a", 300), Change{Epoch: 3}, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := s.C.Delete(t.Context(), s.Shard(3, 1)); err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetPlacement(t.Context()); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Errorf("with a shard missing: got %d units, err %v; want an error naming the shards", len(m.Units), err)
	}
}
