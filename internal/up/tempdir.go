package up

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// etcdDirPattern names the embedded etcd's temporary data directories.
const etcdDirPattern = "switchyard-etcd-*"

// ownerFile marks a data directory as made by etcdDataDir: only such
// directories are swept, and only when their lock is free.
const ownerFile = "owner.pid"

// etcdDataDir makes the embedded etcd's temporary data directory and
// locks it (flock) for as long as lock stays open: Close removes the
// directory and closes lock. The kernel drops the lock when the process
// dies, even by SIGKILL, so the directories that killed runs left behind
// are found and removed here first: at the next start at the latest.
func etcdDataDir(log *slog.Logger) (dir string, lock *os.File, err error) {
	sweepEtcdDirs(log)
	dir, err = os.MkdirTemp("", etcdDirPattern)
	if err != nil {
		return "", nil, fmt.Errorf("up: etcd data directory: %w", err)
	}
	if lock, err = lockDir(dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("up: etcd data directory: %w", err)
	}
	// Written once locked: a sweep that sees the owner file and gets the
	// lock knows the owner is gone.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		lock.Close()
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("up: etcd data directory: %w", err)
	}
	return dir, lock, nil
}

// lockDir takes an exclusive lock on dir without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweepEtcdDirs removes the data directories of runs that are gone: those
// with an owner file whose lock no one holds. A directory being made (no
// owner file yet) or in use (locked) is left alone.
func sweepEtcdDirs(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), etcdDirPattern))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		lock, err := lockDir(dir)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue // its run is alive
		}
		if err != nil {
			log.Warn("stale etcd data directory: cannot lock it", "dir", dir, "err", err)
			continue
		}
		err = os.RemoveAll(dir)
		lock.Close()
		if err != nil {
			log.Warn("stale etcd data directory: cannot remove it", "dir", dir, "err", err)
			continue
		}
		log.Info("removed the etcd data directory of a run that is gone", "dir", dir, "pid", strings.TrimSpace(string(owner)))
	}
}
