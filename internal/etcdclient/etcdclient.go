// Package etcdclient dials etcd the way every Switchyard role does.
package etcdclient

import (
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// New connects to the etcd endpoints, with client-certificate TLS when
// tlsConf is set. The client's own logger is silenced: errors reach
// callers as values.
func New(endpoints []string, tlsConf *tls.Config) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		TLS:         tlsConf,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", endpoints, err)
	}
	return c, nil
}
