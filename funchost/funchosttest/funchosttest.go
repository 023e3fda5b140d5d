// Package funchosttest assembles the repository's function app for tests
// of the local Functions host: a script root with host.json, the function
// folders and a handler built for this machine.
package funchosttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// AppRoot builds cmd/handler for this machine into a new temporary
// directory together with the repository's host.json and functions/*/
// function.json, the layout `make build` gives dist/app, and returns it.
func AppRoot(t testing.TB) string {
	t.Helper()
	repo := RepoRoot(t)
	root := t.TempDir()
	Build(t, repo, "./cmd/handler", filepath.Join(root, "handler"))
	copyFile(t, filepath.Join(repo, "host.json"), filepath.Join(root, "host.json"))
	matches, err := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("funchosttest: no functions/*/function.json in %s: %v", repo, err)
	}
	for _, m := range matches {
		name := filepath.Base(filepath.Dir(m))
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatalf("funchosttest: %v", err)
		}
		copyFile(t, m, filepath.Join(root, name, "function.json"))
	}
	return root
}

// RepoRoot is the directory of the root module's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(GoTool(), "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		t.Fatalf("funchosttest: cannot find the module root (go env GOMOD = %q): %v", gomod, err)
	}
	return filepath.Dir(gomod)
}

// Build runs go build -o out pkg in dir.
func Build(t testing.TB, dir, pkg, out string) {
	t.Helper()
	cmd := exec.Command(GoTool(), "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("funchosttest: go build %s: %v\n%s", pkg, err, b)
	}
}

// GoTool is the go command on PATH, else the one of the toolchain that
// built the test.
func GoTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	// Not on PATH (an IDE's test runner): the toolchain that runs this test
	// is in GOROOT, which the go command sets for the tests it runs.
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatalf("funchosttest: %v", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatalf("funchosttest: %v", err)
	}
}
