//go:build !unix

package seamtest

// fileLock is a no-op where flock(2) is missing: there, do not run test
// binaries that start the fake in parallel before node_modules exists.
type fileLock struct{}

func lockFile(string) (*fileLock, error) { return &fileLock{}, nil }
func (*fileLock) exclusive() error       { return nil }
func (*fileLock) shared() error          { return nil }
func (*fileLock) unlock()                {}
