package eventhubs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventhubs"
)

// TestOwnershipTakeover: a receiver with a higher owner level (epoch)
// takes the partition; the old one's receive fails as azeventhubs reports
// a lost ownership; lower epochs and receivers without one are refused
// while it reads.
func TestOwnershipTakeover(t *testing.T) {
	e := start(t, nil)
	c := e.consumer(t, "listen", "extra")
	yes := true
	earliest := azeventhubs.StartPosition{Earliest: &yes}

	plain := partitionClient(t, c, "0", earliest, nil)
	e.append(t, 0, "a")
	require.Equal(t, []string{"a"}, bodies(receive(t, plain, 1)))

	first := partitionClient(t, c, "0", earliest, ptr(int64(1)))
	require.Equal(t, []string{"a"}, bodies(receive(t, first, 1)))
	_, err := plain.ReceiveEvents(ctx(t), 1, nil)
	requireOwnershipLost(t, err, "an epoch receiver displaces receivers without one")

	second := partitionClient(t, c, "0", earliest, ptr(int64(2)))
	require.Equal(t, []string{"a"}, bodies(receive(t, second, 1)))
	_, err = first.ReceiveEvents(ctx(t), 1, nil)
	requireOwnershipLost(t, err, "a higher epoch displaces a lower one")
	require.ErrorContains(t, err, "with higher epoch of '2' is created hence current receiver")

	// Refused at attach, with the service's condition (azeventhubs calls
	// a refused attach a lost connection, against Azure too).
	lower := partitionClient(t, c, "0", earliest, ptr(int64(1)))
	_, err = lower.ReceiveEvents(ctx(t), 1, nil)
	require.ErrorContains(t, err, "amqp:link:stolen", "a lower epoch is refused")
	require.ErrorContains(t, err, "with a higher epoch '2' already exists")
	none := partitionClient(t, c, "0", earliest, nil)
	_, err = none.ReceiveEvents(ctx(t), 1, nil)
	require.ErrorContains(t, err, "amqp:link:stolen", "a receiver without epoch is refused")
	require.ErrorContains(t, err, "non-epoch receiver is not allowed")

	// Other groups and partitions are not affected.
	other := partitionClient(t, e.consumer(t, "listen", azeventhubs.DefaultConsumerGroup), "0", earliest, nil)
	require.Equal(t, []string{"a"}, bodies(receive(t, other, 1)))

	// Equal epochs displace each other (the .NET processor always uses 0).
	e.append(t, 0, "b")
	same := partitionClient(t, c, "0", azeventhubs.StartPosition{SequenceNumber: ptr(int64(1))}, ptr(int64(2))) // after "b"
	e.append(t, 0, "c")
	require.Equal(t, []string{"c"}, bodies(receive(t, same, 1)))
	_, err = second.ReceiveEvents(ctx(t), 5, nil)
	requireOwnershipLost(t, err, "an equal epoch displaces")
}

func requireOwnershipLost(t *testing.T, err error, msg string) {
	t.Helper()
	var ehErr *azeventhubs.Error
	require.True(t, errors.As(err, &ehErr), "%s: %v", msg, err)
	require.Equal(t, azeventhubs.ErrorCodeOwnershipLost, ehErr.Code, "%s: %v", msg, err)
}

// TestFiveReceiversWithoutEpoch is Event Hubs' limit per partition and
// group.
func TestFiveReceiversWithoutEpoch(t *testing.T) {
	e := start(t, nil)
	c := e.authorized(t, "listen")
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	addr := testName + "/ConsumerGroups/$Default/Partitions/1"
	for i := range 5 {
		_, err := s.NewReceiver(ctx(t), addr, nil)
		require.NoError(t, err, "receiver %d", i)
	}
	_, err = s.NewReceiver(ctx(t), addr, nil)
	require.Equal(t, "amqp:resource-limit-exceeded", condition(err), "%v", err)
}

// TestNotFound: unknown hubs, consumer groups and partitions are
// amqp:not-found, which azeventhubs treats as final.
func TestNotFound(t *testing.T) {
	e := start(t, nil)
	c := e.authorized(t, "owner")
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	for _, addr := range []string{
		"otherhub/ConsumerGroups/$Default/Partitions/0",
		testName + "/ConsumerGroups/nosuchgroup/Partitions/0",
		testName + "/ConsumerGroups/$Default/Partitions/2",
		testName + "/ConsumerGroups/$Default/Partitions/00",
		testName + "/ConsumerGroups/$Default/Partitions/-1",
		testName + "/ConsumerGroups/$Default",
		testName, // a receiver needs a group and a partition
		"",
	} {
		_, err := s.NewReceiver(ctx(t), addr, nil)
		require.Equal(t, "amqp:not-found", condition(err), "%q: %v", addr, err)
	}
	for _, addr := range []string{"otherhub", testName + "/Partitions/7"} {
		_, err := s.NewSender(ctx(t), addr, nil)
		require.Equal(t, "amqp:not-found", condition(err), "%q: %v", addr, err)
	}
	// Spellings clients use for existing entities are found.
	for _, addr := range []string{
		"/" + testName + "/ConsumerGroups/$Default/Partitions/0", // .NET
		testName + "/consumergroups/$default/partitions/0",       // JS's $default, any case
		"amqps://" + testHost + ":5671/" + testName + "/ConsumerGroups/EXTRA/Partitions/1",
	} {
		r, err := s.NewReceiver(ctx(t), addr, nil)
		require.NoError(t, err, "%q", addr)
		require.NoError(t, r.Close(ctx(t)))
	}

	// With azeventhubs: the error it returns is final, not retried.
	cc := e.consumer(t, "listen", "nosuchgroup")
	pc, err := cc.NewPartitionClient("0", nil)
	require.NoError(t, err)
	_, err = pc.ReceiveEvents(ctx(t), 1, nil)
	require.ErrorContains(t, err, "could not be found")
}

// TestUnauthorized: links need a token, for the entity, with the right
// claim; bad tokens are 401 on $cbs.
func TestUnauthorized(t *testing.T) {
	e := start(t, nil)
	hubAud := "amqp://" + testHost + "/" + testName
	recv := testName + "/ConsumerGroups/$Default/Partitions/0"

	c := e.dial(t)
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	_, err = s.NewReceiver(ctx(t), recv, nil)
	require.Equal(t, "amqp:unauthorized-access", condition(err), "no token: %v", err)

	for name, tok := range map[string]string{
		"wrong key":                          token(hubAud, "listen", "not-the-key", time.Now().Add(time.Hour)),
		"unknown policy":                     token(hubAud, "nobody", keyOf("nobody"), time.Now().Add(time.Hour)),
		"expired":                            token(hubAud, "listen", keyOf("listen"), time.Now().Add(-time.Hour)),
		"other namespace":                    token("amqp://elsewhere.example/"+testName, "listen", keyOf("listen"), time.Now().Add(time.Hour)),
		"no rights":                          token(hubAud, "none", keyOf("none"), time.Now().Add(time.Hour)),
		"garbage":                            "SharedAccessSignature sr=&&&",
		"not a sas":                          "Bearer eyJ",
		"base64-decoded key (IoT Hub style)": iotHubStyleToken(hubAud),
	} {
		require.Equal(t, int32(401), putToken(t, c, hubAud, tok), name)
	}
	// A token for another entity does not cover this one.
	partAud := "amqp://" + testHost + "/" + testName + "/ConsumerGroups/$Default/Partitions/1"
	require.Equal(t, int32(202), putToken(t, c, partAud, token(partAud, "listen", keyOf("listen"), time.Now().Add(time.Hour))))
	_, err = s.NewReceiver(ctx(t), recv, nil)
	require.Equal(t, "amqp:unauthorized-access", condition(err), "token for partition 1 only: %v", err)
	_, err = s.NewReceiver(ctx(t), testName+"/ConsumerGroups/$Default/Partitions/1", nil)
	require.NoError(t, err)

	// Listen does not send; Send does not listen.
	require.Equal(t, int32(202), putToken(t, c, hubAud, token(hubAud, "listen", keyOf("listen"), time.Now().Add(time.Hour))))
	_, err = s.NewSender(ctx(t), testName, nil)
	require.Equal(t, "amqp:unauthorized-access", condition(err), "%v", err)
	c2 := e.authorized(t, "send")
	s2, err := c2.NewSession(ctx(t), nil)
	require.NoError(t, err)
	_, err = s2.NewReceiver(ctx(t), recv, nil)
	require.Equal(t, "amqp:unauthorized-access", condition(err), "%v", err)

	// azeventhubs: a wrong key is an unauthorized error, returned at once.
	bad := fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=listen;SharedAccessKey=wrong;EntityPath=%s;UseDevelopmentEmulator=true", e.addr, testName)
	cc, err := azeventhubs.NewConsumerClientFromConnectionString(bad, "", azeventhubs.DefaultConsumerGroup, nil)
	require.NoError(t, err)
	defer cc.Close(context.Background())
	_, err = cc.GetEventHubProperties(ctx(t), nil)
	require.ErrorContains(t, err, "status code 401")
	require.ErrorContains(t, err, `the signature does not match the keys of policy "listen"`)
}

// iotHubStyleToken signs with the decoded key, as IoT Hub clients do; the
// Event Hubs endpoint wants the key's text, as every Event Hubs client
// signs.
func iotHubStyleToken(aud string) string {
	return token(aud, "listen", "\x00garbled", time.Now().Add(time.Hour))
}

// TestTokenExpiry: a connection string with a fixed SharedAccessSignature
// cannot refresh it; when it expires the link is detached with
// amqp:unauthorized-access.
func TestTokenExpiry(t *testing.T) {
	e2 := start(t, func(o *eventhubs.Options) { o.ClockSkew = time.Millisecond })
	expiry := time.Now().Add(2 * time.Second).Truncate(time.Second)
	aud := "amqp://" + e2.addr + "/" + testName
	cs := fmt.Sprintf("Endpoint=sb://%s;SharedAccessSignature=%s;EntityPath=%s;UseDevelopmentEmulator=true", e2.addr, token(aud, "listen", keyOf("listen"), expiry), testName)
	cc, err := azeventhubs.NewConsumerClientFromConnectionString(cs, "", azeventhubs.DefaultConsumerGroup, &azeventhubs.ConsumerClientOptions{RetryOptions: azeventhubs.RetryOptions{MaxRetries: -1}})
	require.NoError(t, err)
	defer cc.Close(context.Background())
	yes := true
	pc := partitionClient(t, cc, "0", azeventhubs.StartPosition{Earliest: &yes}, nil)
	e2.append(t, 0, "before")
	require.Equal(t, []string{"before"}, bodies(receive(t, pc, 1)))

	long, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pc.ReceiveEvents(long, 1, nil)
	require.False(t, time.Now().Before(expiry), "detached at the expiry, not before")
	var ehErr *azeventhubs.Error
	require.True(t, errors.As(err, &ehErr), "%v", err)
	require.Equal(t, azeventhubs.ErrorCodeUnauthorizedAccess, ehErr.Code, "%v", err)
}

// TestBadFilters: filters no client sends are refused with
// com.microsoft:argument-error; the connection goes on.
func TestBadFilters(t *testing.T) {
	e := start(t, nil)
	c := e.authorized(t, "listen")
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	addr := testName + "/ConsumerGroups/$Default/Partitions/0"
	for _, f := range []string{
		"", "amqp.annotation.x-opt-offset", "amqp.annotation.x-opt-offset < '5'",
		"amqp.annotation.x-opt-offset > 'abc'", "amqp.annotation.x-opt-sequence-number > '1e3'",
		"amqp.annotation.x-opt-offset > '5' OR 1=1", "amqp.annotation.x-opt-enqueued-time > ''",
		"amqp.annotation.x-opt-unknown > '1'", "sys.offset > 1", string(make([]byte, 300)),
		"amqp.annotation.x-opt-sequence-number > '99999999999999999999'",
	} {
		_, err := s.NewReceiver(ctx(t), addr, &goamqp.ReceiverOptions{Filters: []goamqp.LinkFilter{goamqp.NewSelectorFilter(f)}})
		require.Equal(t, "com.microsoft:argument-error", condition(err), "%q: %v", f, err)
	}
	_, err = s.NewReceiver(ctx(t), addr, &goamqp.ReceiverOptions{
		Properties: map[string]any{"com.microsoft:epoch": "high"},
	})
	require.Equal(t, "com.microsoft:argument-error", condition(err), "a string epoch: %v", err)
	r, err := s.NewReceiver(ctx(t), addr, &goamqp.ReceiverOptions{Filters: []goamqp.LinkFilter{goamqp.NewSelectorFilter("amqp.annotation.x-opt-offset >= 0")}})
	require.NoError(t, err, ".NET's unquoted form")
	require.NoError(t, r.Close(ctx(t)))
}

// TestManagementCreditAbuse: a client that floods $management with
// requests and never gives its reply link credit is held back (its
// requests stop being taken once the replies it does not read fill its
// link's buffer), and nobody else notices.
func TestManagementCreditAbuse(t *testing.T) {
	e := start(t, nil)
	c := e.authorized(t, "listen")
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	settled := goamqp.SenderSettleModeSettled
	snd, err := s.NewSender(ctx(t), "$management", &goamqp.SenderOptions{SettlementMode: &settled})
	require.NoError(t, err)
	reply := "abuser-reply"
	_, err = s.NewReceiver(ctx(t), "$management", &goamqp.ReceiverOptions{TargetAddress: reply, Credit: -1}) // no credit, ever
	require.NoError(t, err)

	sent := 0
	for ; sent < 20_000; sent++ {
		sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := snd.Send(sctx, &goamqp.Message{
			Properties:            &goamqp.MessageProperties{MessageID: fmt.Sprint(sent), ReplyTo: &reply},
			ApplicationProperties: map[string]any{"operation": "READ", "type": "com.microsoft:eventhub", "name": testName},
		}, nil)
		cancel()
		// go-amqp reports a send that timed out waiting for credit as
		// amqp:link:transfer-limit-exceeded.
		if errors.Is(err, context.DeadlineExceeded) || condition(err) == "amqp:link:transfer-limit-exceeded" {
			break
		}
		require.NoError(t, err)
	}
	require.Less(t, sent, 20_000, "the endpoint stopped taking requests whose replies cannot go out")
	t.Logf("the endpoint took %d requests before holding the client back", sent)

	other := e.consumer(t, "listen", azeventhubs.DefaultConsumerGroup)
	props, err := other.GetEventHubProperties(ctx(t), nil)
	require.NoError(t, err, "another client is served as usual")
	require.Equal(t, testName, props.Name)
}
