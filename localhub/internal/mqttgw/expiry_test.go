package mqttgw

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// TestConnectionClosesWhenTokenExpires: IoT Hub closes an MQTT connection
// whose SAS token expires, and SDKs reconnect with a fresh one. The hub
// accepts a token until sas.MaxClockSkew past its se, so the test runs the
// gateway's clock that far ahead and gives the token an se two seconds
// away.
func TestConnectionClosesWhenTokenExpires(t *testing.T) {
	h := newTestHubWith(t, Config{Now: func() time.Time { return time.Now().Add(sas.MaxClockSkew) }})
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	expiry := time.Now().Add(2 * time.Second)
	tok, err := sas.New(testHost, "", key, expiry)
	require.NoError(t, err)
	d := h.connect(t, "d1", key, withCredentials(testHost+"/d1/"+goAPIVersion, tok))
	d.subscribe(t, methodsFilter, 0)

	d.requireLost(t)
	// se has whole seconds: the token is good until the second it names.
	require.False(t, time.Now().Before(expiry.Truncate(time.Second)), "closed at %v, before the token expired at %v", time.Now(), expiry.Truncate(time.Second))
	require.Eventually(t, func() bool { return !h.gw.Connected("d1") }, waitLimit, 5*time.Millisecond)

	// A fresh token connects again; the SUBACK comes after the session is
	// attached.
	h.connect(t, "d1", key).subscribe(t, methodsFilter, 0)
	require.True(t, h.gw.Connected("d1"))
}

// TestLongLivedTokenKeepsConnection: the expiry timer of a session that
// ended is stopped, and one that has not expired leaves it alone.
func TestLongLivedTokenKeepsConnection(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key) // an hour
	d.subscribe(t, methodsFilter, 0)
	s := h.session(t, "d1")
	s.out.mu.Lock()
	timer := s.expiry
	s.out.mu.Unlock()
	require.NotNil(t, timer, "the session has an expiry timer")

	d.Disconnect(0)
	require.Eventually(t, func() bool { return !h.gw.Connected("d1") }, waitLimit, 5*time.Millisecond)
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	require.Nil(t, s.expiry, "retired with the session")
	require.False(t, timer.Stop(), "the timer was already stopped")
}
