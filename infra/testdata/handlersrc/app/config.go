// Fixture for TestHandlerSettingsExtraction: every way the drift test finds
// an app setting read.
package app

import "os"

const (
	envHost = "FROM_CONST"
	notRead = "NOT_A_SETTING"
)

type config struct {
	Deadline string `env:"FROM_TAG,required"`
	Other    string `json:"not_env"`
}

type loader struct{ getenv func(string) string }

func load(getenv func(string) string, l loader, name string) {
	_ = os.Getenv("FROM_OS_GETENV")
	_, _ = os.LookupEnv("FROM_LOOKUPENV")
	_ = getenv(envHost)
	_ = l.getenv("FROM_METHOD")
	_ = getenv(name) // not a literal: invisible to the test
	_ = notRead
}
