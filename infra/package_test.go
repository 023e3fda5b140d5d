package infra_test

// The package test: build the app root the way `make build` does (host.json,
// one folder per function, the handler for linux/amd64), zip it with
// cmd/package as `make package` does, and check the zip is what Flex
// Consumption needs to start the app.

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPackageIsARunnableAppRoot(t *testing.T) {
	_, err := os.Stat(filepath.Join(repoRoot, "cmd", "handler", "main.go"))
	require.NoError(t, err, "cmd/handler/main.go: the custom handler must exist before the app can be packaged")

	appRoot := t.TempDir()
	copyFile(t, filepath.Join(repoRoot, "host.json"), filepath.Join(appRoot, "host.json"))
	functions := functionFolders(t)
	for _, fn := range functions {
		copyFile(t, filepath.Join(repoRoot, "functions", fn, "function.json"), filepath.Join(appRoot, fn, "function.json"))
	}
	goCommand(t, []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"},
		"build", "-o", filepath.Join(appRoot, "handler"), "./cmd/handler")
	zipPath := filepath.Join(t.TempDir(), "app.zip")

	goCommand(t, nil, "run", "./cmd/package", "-src", appRoot, "-out", zipPath)

	zr, err := zip.OpenReader(zipPath)
	require.NoError(t, err)
	defer zr.Close()
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
	}
	require.Contains(t, entries, "host.json")
	for _, fn := range functions {
		require.Contains(t, entries, fn+"/function.json", "function folder %s", fn)
	}
	handler, ok := entries["handler"]
	require.True(t, ok, "no handler at the zip root (host.json defaultExecutablePath)")
	require.True(t, handler.Mode().IsRegular())
	require.Equal(t, fs.FileMode(0o755), handler.Mode().Perm(), "the handler must be executable in the zip")
	requireStaticLinuxAMD64(t, handler)
}

// requireStaticLinuxAMD64 checks the binary runs on the Functions Linux
// workers whatever their C library: x86-64 ELF, no dynamic loader.
func requireStaticLinuxAMD64(t *testing.T, f *zip.File) {
	t.Helper()
	rc, err := f.Open()
	require.NoError(t, err)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err)
	bin, err := elf.NewFile(bytes.NewReader(data))
	require.NoError(t, err, "handler is not an ELF binary")
	defer bin.Close()
	require.Equal(t, elf.EM_X86_64, bin.Machine)
	for _, prog := range bin.Progs {
		require.NotEqual(t, elf.PT_INTERP, prog.Type, "handler is dynamically linked; build with CGO_ENABLED=0")
	}
}

func functionFolders(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "functions", "*", "function.json"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(filepath.Dir(p)))
	}
	return out
}

// goCommand runs the go tool in the module root with extra environment.
func goCommand(t *testing.T, env []string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %v:\n%s", args, out)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(to), 0o755))
	require.NoError(t, os.WriteFile(to, data, 0o644))
}
