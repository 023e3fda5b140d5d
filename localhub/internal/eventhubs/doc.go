// Package eventhubs is the local hub's Event Hub-compatible endpoint: the
// AMQP nodes that Event Hubs clients (Go azeventhubs, .NET
// Azure.Messaging.EventHubs inside the Functions host, JS
// @azure/event-hubs) use to read the built-in events endpoint, served
// over package amqp from package eventlog. It knows nothing of the hub
// around it: the hub passes in the log, its names and a policy lookup.
//
// The nodes, and what each client sends to them (reference notes,
// eventhubs-amqp.md; docs/architecture.md has what was settled):
//
//   - $cbs: put-token requests. A SAS token is checked as Event Hubs
//     checks it (a known policy, HMAC-SHA256 with the key's text over sr
//     as sent, not expired, an audience on this namespace) and recorded
//     for the connection; links are authorised by the tokens their
//     connection put, and detached with amqp:unauthorized-access when the
//     token that allowed them expires. SASL PLAIN with a policy name and
//     key authorises a whole connection.
//   - $management (and <hub>/$management): READ of the Event Hub's and a
//     partition's properties, typed exactly as the clients check them.
//   - <hub>/ConsumerGroups/<group>/Partitions/<id>: consumers. The
//     selector filter gives the start position; epochs (owner levels)
//     displace older receivers with amqp:link:stolen; events go out
//     pre-settled, read from the log as credit allows.
//   - <hub> and <hub>/Partitions/<id>: producers, plain messages and
//     batches (message-format 0x80013700), up to 1 MiB.
//
// Unknown entities, consumer groups and partitions are refused with
// amqp:not-found; a missing or expired token with
// amqp:unauthorized-access; a bad filter with com.microsoft:argument-error.
package eventhubs
