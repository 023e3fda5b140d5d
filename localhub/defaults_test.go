package localhub_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// The local hub's defaults are what infra/ deploys, so code tested
// locally sees what it gets in Azure. These tests fail when infra/
// changes and the defaults do not follow.

func TestDefaultConsumerGroupsAreInfras(t *testing.T) {
	main, err := os.ReadFile("../infra/main.bicep")
	require.NoError(t, err)
	var infra []string
	for _, param := range []string{"functionsConsumerGroup", "localDevConsumerGroup"} {
		m := regexp.MustCompile(`(?m)^param ` + param + ` string = '([^']+)'$`).FindSubmatch(main)
		require.NotNil(t, m, "infra/main.bicep: param %s", param)
		infra = append(infra, string(m[1]))
	}
	require.Regexp(t, `consumerGroups: \[\s*functionsConsumerGroup\s+localDevConsumerGroup\s*\]`, string(main),
		"infra/main.bicep creates exactly these two groups")
	require.Equal(t, infra, localhub.DefaultConsumerGroups)
}

func TestDefaultRoutesAreInfras(t *testing.T) {
	mod, err := os.ReadFile("../infra/modules/iothub.bicep")
	require.NoError(t, err)
	sources := regexp.MustCompile(`source: '(\w+)'`).FindAllSubmatch(mod, -1)
	var names []string
	for _, s := range sources {
		names = append(names, string(s[1]))
	}
	require.ElementsMatch(t, []string{"TwinChangeEvents", "DeviceMessages"}, names,
		"iothub.bicep routes twin changes and, through the fallback route, telemetry")
	want, err := localhub.ParseRoutes("TwinChangeEvents,DeviceMessages")
	require.NoError(t, err)
	require.Equal(t, want, localhub.DefaultRoutes)
}
