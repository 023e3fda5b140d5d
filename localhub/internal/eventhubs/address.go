package eventhubs

import (
	"strconv"
	"strings"
)

// node is what a link address names.
type node uint8

const (
	nodeCBS        node = iota + 1 // $cbs: put-token requests
	nodeManagement                 // $management, or <hub>/$management (JS)
	nodeHub                        // <hub>: a producer lets the hub pick the partition
	nodePartition                  // <hub>/Partitions/<id>: a producer's partition
	nodeConsumer                   // <hub>/ConsumerGroups/<group>/Partitions/<id>
)

// address is a parsed link address.
type address struct {
	node node
	// path is the entity path in canonical spelling (the hub's name, the
	// configured consumer group's): what tokens must cover and what errors
	// name.
	path      string
	group     string // nodeConsumer: the configured spelling
	partition int    // nodePartition, nodeConsumer
}

// maxAddress bounds the addresses we look at; real ones are well under it.
const maxAddress = 1024

// parseAddress resolves a link address against the hub's entities. The
// clients spell the same entity differently: Go and JS send
// "<hub>/ConsumerGroups/<group>/Partitions/<id>", .NET a leading "/"
// (Uri.AbsolutePath), others a full "amqps://host/..." URI; names are
// matched case-insensitively, as Event Hubs does ($Default and JS's
// "$default" are one group). The error is the description of an
// amqp:not-found refusal.
func (s *Server) parseAddress(raw string) (address, string, bool) {
	if len(raw) > maxAddress {
		return address{}, "The messaging entity name is longer than " + strconv.Itoa(maxAddress) + " characters.", false
	}
	p := entityPath(raw)
	switch {
	case p == "$cbs":
		return address{node: nodeCBS, path: p}, "", true
	case strings.EqualFold(p, "$management"):
		return address{node: nodeManagement, path: "$management"}, "", true
	}
	segs := strings.Split(p, "/")
	if !strings.EqualFold(segs[0], s.name) {
		return address{}, s.notFound(p), false
	}
	hub := s.name
	switch {
	case len(segs) == 1:
		return address{node: nodeHub, path: hub}, "", true
	case len(segs) == 2 && strings.EqualFold(segs[1], "$management"):
		return address{node: nodeManagement, path: hub + "/$management"}, "", true
	case len(segs) == 3 && strings.EqualFold(segs[1], "Partitions"):
		id, ok := s.partitionID(segs[2])
		if !ok {
			return address{}, s.noPartition(p), false
		}
		return address{node: nodePartition, path: hub + "/Partitions/" + segs[2], partition: id}, "", true
	case len(segs) == 5 && strings.EqualFold(segs[1], "ConsumerGroups") && strings.EqualFold(segs[3], "Partitions"):
		group, ok := s.consumerGroup(segs[2])
		if !ok {
			return address{}, s.notFound(p) + " The Event Hub's consumer groups are " + strings.Join(s.groups, ", ") + ".", false
		}
		id, ok := s.partitionID(segs[4])
		if !ok {
			return address{}, s.noPartition(p), false
		}
		return address{node: nodeConsumer, path: hub + "/ConsumerGroups/" + group + "/Partitions/" + segs[4], group: group, partition: id}, "", true
	}
	return address{}, s.notFound(p), false
}

// entityPath strips what clients put around an entity path: a scheme and
// host ("amqps://host:5671/hub"), leading slashes (.NET) and a trailing
// slash.
func entityPath(raw string) string {
	p := raw
	if _, rest, ok := strings.Cut(p, "://"); ok {
		_, p, _ = strings.Cut(rest, "/")
	}
	p = strings.TrimLeft(p, "/")
	return strings.TrimSuffix(p, "/")
}

// partitionID parses a partition id as the hub lists them: "0" to
// "<n-1>", no sign, no leading zero.
func (s *Server) partitionID(id string) (int, bool) {
	n, err := strconv.Atoi(id)
	if err != nil || n < 0 || n >= s.partitions || strconv.Itoa(n) != id {
		return 0, false
	}
	return n, true
}

// consumerGroup returns the configured spelling of a group name.
func (s *Server) consumerGroup(name string) (string, bool) {
	for _, g := range s.groups {
		if strings.EqualFold(g, name) {
			return g, true
		}
	}
	return "", false
}

// notFound is Event Hubs' description for an unknown entity; .NET maps
// "The messaging entity .* could not be found" to ResourceNotFound.
func (s *Server) notFound(path string) string {
	return "The messaging entity 'sb://" + s.hostname + "/" + path + "' could not be found."
}

func (s *Server) noPartition(path string) string {
	return s.notFound(path) + " The Event Hub's partitions are 0 to " + strconv.Itoa(s.partitions-1) + "."
}
