//go:build unix

package seamtest

import (
	"os"
	"syscall"
)

// fileLock is an flock(2) lock, shared across processes: parallel test
// binaries (go test ./...) must not run npm ci at the same time, nor while
// another one's fake is loading its modules.
type fileLock struct{ f *os.File }

func lockFile(path string) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	return &fileLock{f}, nil
}

func (l *fileLock) exclusive() error { return syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX) }

// shared turns the lock into a shared one (flock converts it in place).
func (l *fileLock) shared() error { return syscall.Flock(int(l.f.Fd()), syscall.LOCK_SH) }

// unlock releases the lock; closing the file does.
func (l *fileLock) unlock() { _ = l.f.Close() }
