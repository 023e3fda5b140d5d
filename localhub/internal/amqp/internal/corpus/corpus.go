// Package corpus writes fuzz seed corpora in the format go test reads, so
// each AMQP package can keep its seeds in code and check the files in:
// go test -run TestWriteCorpus -write-corpus ./localhub/internal/amqp/...
package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Write replaces testdata/fuzz/<target>/seed-* with one file per seed;
// each seed holds the fuzz function's arguments ([]byte or uint8).
func Write(t testing.TB, target string, seeds ...[]any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for i, args := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch a := a.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", a)
			case uint8:
				fmt.Fprintf(&b, "byte(%d)\n", a)
			default:
				t.Fatalf("corpus: unsupported argument %T", a)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Bytes wraps single-[]byte seeds as argument lists.
func Bytes(seeds [][]byte) [][]any {
	out := make([][]any, len(seeds))
	for i, s := range seeds {
		out[i] = []any{s}
	}
	return out
}
