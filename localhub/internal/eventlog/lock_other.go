//go:build !unix && !windows

package eventlog

// lockDir does not lock where the platform offers no file lock.
func lockDir(string) (func(), error) { return func() {}, nil }

func syncDir(string) error { return nil }
