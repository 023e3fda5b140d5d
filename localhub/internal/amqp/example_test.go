package amqp_test

import (
	"context"
	"net"
	"strings"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// An Event Hubs-style application: a $cbs node answering put-token
// requests, consumers reading a partition (with their selector filter and
// epoch), and a refusal for anything else.
func Example() {
	attach := func(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
		switch addr := l.Address(); {
		case addr == "$cbs" && l.Role() == frame.RoleReceiver: // the client sends requests
			go amqp.ServeRequests(l.Context(), l, func(ctx context.Context, req *codec.Message) *codec.Message {
				// Check the token, remember it for this connection:
				// l.Conn().SetValue(...)
				return &codec.Message{ApplicationProperties: codec.Map{
					{Key: "status-code", Value: int32(202)},
					{Key: "status-description", Value: "Accepted"},
				}}
			})
			return amqp.LinkOptions{}, nil
		case addr == "$cbs": // the client's reply link
			return amqp.LinkOptions{}, nil
		case strings.Contains(addr, "/Partitions/") && l.Role() == frame.RoleSender:
			filter, _ := l.Source().Filter.Get(codec.Symbol("apache.org:selector-filter:string"))
			epoch, _ := l.Properties().Get(codec.Symbol("com.microsoft:epoch"))
			_, _ = filter, epoch // pick the start position; detach an older epoch's link with
			// old.Detach(amqp.Errorf(frame.CondStolen, "..."))
			go func() {
				for {
					event := []byte{0x00, 0x53, 0x75, 0xa0, 0x00} // an encoded message
					if err := l.Send(l.Context(), event); err != nil {
						return // the link or connection ended
					}
				}
			}()
			return amqp.LinkOptions{}, nil
		}
		return amqp.LinkOptions{}, amqp.Errorf(frame.CondNotFound, "The messaging entity '%s' could not be found.", l.Address())
	}

	srv := amqp.NewServer(amqp.Options{Attach: attach})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return
	}
	go srv.Serve(ln)
	defer srv.Close()
}
