package funchost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// childEnv makes the test binary run a child (runChild) instead of the
// tests: for what must happen in a fresh process, such as Go reading
// SSL_CERT_FILE, which it does once per process.
const childEnv = "FUNCHOST_TEST_CHILD"

// TestEventHubTLSWithSystemRoots reads the built-in endpoint over TLS
// with the connection string a real IoT Hub's portal would show
// (Endpoint=sb://host:port/, no emulator flag), the way the local host
// connects to Azure: no TLS settings of its own, the local CA trusted
// through the process's environment as a user trusts it (SSL_CERT_FILE),
// the certificate checked for the host name without the port.
func TestEventHubTLSWithSystemRoots(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("Go reads SSL_CERT_FILE on Linux and the BSDs only; on " + runtime.GOOS + " the CA would have to be in the system's store")
	}
	t.Parallel()
	hub := newEHHub(t, nil)
	dev := localhubtest.NewDevice(t, hub.Hub, "tls-dev", localhubtest.Reply(200, `{}`))
	dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": "2026-01-02T03:04:05Z"}}})
	cs, err := hub.EventHubConnectionString("service", false)
	require.NoError(t, err)
	require.Regexp(t, `^Endpoint=sb://localhost:\d+/;`, cs, "TLS, on a port other than 5671")
	partition := strconv.Itoa(hub.Events().PartitionFor("tls-dev"))

	child := func(caFile string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=tls-consumer", "SSL_CERT_FILE="+caFile, "SSL_CERT_DIR=",
			"FUNCHOST_TEST_CONNECTION="+cs, "FUNCHOST_TEST_PARTITION="+partition)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := child(hub.CAFile())
	require.NoError(t, err, "%s", out)
	require.Contains(t, out, "iothub-message-source=twinChangeEvents")

	// The system roots are what the host trusts: without the local CA the
	// hub's certificate is refused.
	other := filepath.Join(t.TempDir(), "other-ca.pem")
	require.NoError(t, os.WriteFile(other, localhubtest.New(t, nil).CACertPEM(), 0o600))
	out, err = child(other)
	require.Error(t, err, "%s", out)
	require.Contains(t, out, "certificate signed by unknown authority")
}

// runChild runs the child named by childEnv and returns its exit code.
func runChild(name string) int {
	switch name {
	case "tls-consumer":
		if err := tlsConsumer(); err != nil {
			fmt.Println("tls-consumer:", err)
			return 1
		}
		return 0
	}
	fmt.Println("unknown child", name)
	return 2
}

// tlsConsumer connects as a listener does, with the connection setting
// of FUNCHOST_TEST_CONNECTION, and prints the first event of a partition.
func tlsConsumer() error {
	conn, err := resolveConnection("C", settings{"C": os.Getenv("FUNCHOST_TEST_CONNECTION")})
	if err != nil {
		return err
	}
	client, err := conn.consumerClient("", "localdev", clientRetry{maxRetries: 0})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer client.Close(ctx)
	yes := true
	pc, err := client.NewPartitionClient(os.Getenv("FUNCHOST_TEST_PARTITION"), &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{Earliest: &yes}, OwnerLevel: &ownerLevel})
	if err != nil {
		return err
	}
	defer pc.Close(ctx)
	evs, err := pc.ReceiveEvents(ctx, 1, nil)
	if err != nil {
		return err
	}
	fmt.Printf("iothub-message-source=%v\n", evs[0].SystemProperties["iothub-message-source"])
	return nil
}
