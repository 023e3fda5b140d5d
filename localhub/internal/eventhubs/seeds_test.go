//go:build seedgen

package eventhubs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteSeedCorpora writes the checked-in seed corpora of the fuzz
// targets (make test runs them):
//
//	go test -tags seedgen -run TestWriteSeedCorpora ./localhub/internal/eventhubs/
func TestWriteSeedCorpora(t *testing.T) {
	var selectors []string
	selectors = append(selectors, selectorSeeds...)
	writeCorpus(t, "FuzzParseSelector", selectors, func(s string) string { return fmt.Sprintf("string(%q)", s) })
	writeCorpus(t, "FuzzParseAddress", addressSeeds, func(s string) string { return fmt.Sprintf("string(%q)", s) })
	writeCorpus(t, "FuzzSplitAudience", audienceSeeds, func(s string) string { return fmt.Sprintf("string(%q)", s) })
	writeCorpus(t, "FuzzUnpack", unpackSeeds(t), func(s unpackSeed) string { return fmt.Sprintf("uint32(%d)\n[]byte(%q)", s.format, s.payload) })
}

func writeCorpus[T any](t *testing.T, target string, inputs []T, format func(T) string) {
	dir := filepath.Join("testdata", "fuzz", target)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, in := range inputs {
		body := "go test fuzz v1\n" + format(in) + "\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644))
	}
}
