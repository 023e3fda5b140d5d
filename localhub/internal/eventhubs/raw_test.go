package eventhubs_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Helpers that speak AMQP with go-amqp directly, for what the Event Hubs
// SDKs never send: plain (format 0) messages as .NET sends one event,
// hostile filters, bad tokens, abusive request links.

// token is an Event Hubs SAS token: signed with the key's text, sr the
// URL-encoded audience.
func token(audience, policy, key string, expiry time.Time) string {
	sr := url.QueryEscape(audience)
	se := strconv.FormatInt(expiry.Unix(), 10)
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(sas.Sign(sr, se, []byte(key))) + "&se=" + se + "&skn=" + policy
}

func (e *env) dial(t testing.TB) *goamqp.Conn {
	t.Helper()
	c, err := goamqp.Dial(ctx(t), "amqp://"+e.addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), HostName: testHost})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// request sends one request on node (a sender and a reply receiver on a
// new session) and returns the response.
func request(t testing.TB, c *goamqp.Conn, node string, props map[string]any, value any) *goamqp.Message {
	t.Helper()
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	defer s.Close(context.Background())
	snd, err := s.NewSender(ctx(t), node, nil)
	require.NoError(t, err)
	reply := node + "-reply-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	rcv, err := s.NewReceiver(ctx(t), node, &goamqp.ReceiverOptions{TargetAddress: reply, Credit: 10})
	require.NoError(t, err)
	id := "req-1"
	msg := &goamqp.Message{Properties: &goamqp.MessageProperties{MessageID: id, ReplyTo: &reply}, ApplicationProperties: props}
	if value != nil {
		msg.Value = value
	}
	require.NoError(t, snd.Send(ctx(t), msg, nil))
	resp, err := rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, id, resp.Properties.CorrelationID, "correlation-id is the request's message-id, a string")
	return resp
}

// putToken puts a token on $cbs and returns the status code.
func putToken(t testing.TB, c *goamqp.Conn, audience, tok string) int32 {
	t.Helper()
	resp := request(t, c, "$cbs", map[string]any{
		"operation": "put-token", "type": "servicebus.windows.net:sastoken", "name": audience, "expiration": "0",
	}, tok)
	code, ok := resp.ApplicationProperties["status-code"].(int32)
	require.True(t, ok, "status-code is an AMQP int: %T", resp.ApplicationProperties["status-code"])
	_, ok = resp.ApplicationProperties["status-description"].(string)
	require.True(t, ok, "status-description is a str")
	return code
}

// authorized dials and puts a valid token of policy for the whole hub.
func (e *env) authorized(t testing.TB, policy string) *goamqp.Conn {
	t.Helper()
	c := e.dial(t)
	aud := "amqp://" + testHost + "/" + testName
	require.Equal(t, int32(202), putToken(t, c, aud, token(aud, policy, keyOf(policy), time.Now().Add(time.Hour))))
	return c
}
