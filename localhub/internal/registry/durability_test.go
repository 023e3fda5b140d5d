package registry

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const crashChildEnv = "REGISTRY_CRASH_CHILD_DB"

// TestKillAfterReturnLosesNothing runs writes in a child process, kills it
// with SIGKILL right after they return, and checks that all of them are in
// the file.
func TestKillAfterReturnLosesNothing(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "registry.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillAfterReturnLosesNothing$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	// Anything before "committed" is the child's own failure report.
	var lines []string
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if sc.Text() == "committed" {
			break
		}
		lines = append(lines, sc.Text())
	}
	require.Empty(t, lines, "child output")
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()

	s, err := Open(Options{Path: path})
	require.NoError(t, err)
	defer s.Close()
	tw, err := s.GetTwin("survivor")
	require.NoError(t, err)
	require.EqualValues(t, 11, tw.Properties.Reported["$version"])
	require.Equal(t, json.Number("9"), tw.Properties.Reported["n"])
	_, err = s.GetDevice("deleted")
	require.ErrorIs(t, err, ErrDeviceNotFound)
}

// crashChild writes, reports, then waits to be killed (its stdin never
// closes before that).
func crashChild(path string) {
	s, err := Open(Options{Path: path})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	if _, err := s.CreateDevice(Device{DeviceID: "survivor"}); err != nil {
		fmt.Println("create:", err)
		return
	}
	for i := range 10 {
		if _, err := s.PatchReported("survivor", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			fmt.Println("patch:", err)
			return
		}
	}
	if _, err := s.CreateDevice(Device{DeviceID: "deleted"}); err != nil {
		fmt.Println("create:", err)
		return
	}
	if err := s.DeleteDevice("deleted", ""); err != nil {
		fmt.Println("delete:", err)
		return
	}
	fmt.Println("committed")
	io.Copy(io.Discard, os.Stdin)
}
