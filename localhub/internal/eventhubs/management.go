package eventhubs

import (
	"context"
	"strconv"
	"strings"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// Management request types (app property "type").
const (
	typeEventHub  = "com.microsoft:eventhub"
	typePartition = "com.microsoft:partition"
)

// manage serves the $management node: READ of the Event Hub's and a
// partition's properties. The response types are what the clients check
// (reference §0.6-8, §3): an amqp-value map with str keys (.NET never
// finds a sym key), partition_ids an array of str, times as timestamps,
// sequence numbers as long, georeplication_factor present (Go v2 fails
// without it).
//
// A request is authorised by its security_token (Go, .NET, JS all send
// one) or, failing that, by a token the connection put on $cbs for the
// hub's $management node.
func (s *Server) manage(c *amqp.Conn) amqp.RequestHandler {
	return func(ctx context.Context, req *codec.Message) *codec.Message {
		props := req.ApplicationProperties
		op, _ := props.Get("operation")
		typ, _ := props.Get("type")
		name, _ := props.Get("name")
		if op, _ := op.(string); !strings.EqualFold(op, "READ") {
			return status(400, "unknown operation "+truncateAny(op)+": $management takes READ")
		}
		hub, _ := name.(string)
		if !strings.EqualFold(hub, s.name) {
			return status(404, s.notFound(truncate(hub)))
		}
		if !s.managementAllowed(c, props) {
			return status(401, "Unauthorized: send a security_token, or put a token for "+s.name+"/$management on $cbs first (a policy with ServiceConnect reads the built-in endpoint).")
		}
		switch typ {
		case typeEventHub:
			ids := make([]string, s.events.PartitionCount())
			for i := range ids {
				ids[i] = strconv.Itoa(i)
			}
			return ok(codec.Map{
				{Key: "name", Value: s.name},
				{Key: "type", Value: typeEventHub},
				{Key: "created_at", Value: s.events.CreatedAt()},
				{Key: "partition_count", Value: int32(len(ids))},
				{Key: "partition_ids", Value: ids},
				{Key: "georeplication_factor", Value: int32(1)},
			})
		case typePartition:
			pv, _ := props.Get("partition")
			id, _ := pv.(string)
			n, found := s.partitionID(id)
			if !found {
				return status(404, s.noPartition(s.name+"/Partitions/"+truncate(id)))
			}
			info, err := s.events.Info(n)
			if err != nil {
				return status(500, "partition "+id+": "+err.Error())
			}
			return ok(codec.Map{
				{Key: "name", Value: s.name},
				{Key: "type", Value: typePartition},
				{Key: "partition", Value: id},
				{Key: "begin_sequence_number", Value: info.BeginningSequenceNumber},
				{Key: "last_enqueued_sequence_number", Value: info.LastSequenceNumber},
				{Key: "last_enqueued_offset", Value: info.LastOffset},
				{Key: "last_enqueued_time_utc", Value: info.LastEnqueuedTime},
				{Key: "runtime_info_retrieval_time_utc", Value: s.now().UTC()},
				{Key: "is_partition_empty", Value: info.Empty},
			})
		}
		return status(400, "unknown type "+truncateAny(typ)+": READ takes "+typeEventHub+" or "+typePartition)
	}
}

func ok(body codec.Map) *codec.Message {
	m := status(200, "OK")
	m.Value, m.HasValue = body, true
	return m
}

func (s *Server) managementAllowed(c *amqp.Conn, props codec.Map) bool {
	path := s.name + "/$management"
	if tv, found := props.Get("security_token"); found {
		if token, _ := tv.(string); token != "" {
			g, err := s.validate(token, openHost(c))
			if err == nil && (g.covers(path, Listen, s.now()) || g.covers(path, Send, s.now())) {
				return true
			}
		}
	}
	a := authOf(c)
	_, listen := a.authorized(path, Listen, s.now())
	_, send := a.authorized(path, Send, s.now())
	return listen || send
}
