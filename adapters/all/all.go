// Package all registers every driver this module ships. Import it for its
// side effect when the broker is chosen at run time by configuration:
//
//	import _ "github.com/msgkit/msgkit/adapters/all"
package all

import (
	_ "github.com/msgkit/msgkit/adapters/kafka"    // registers "kafka"
	_ "github.com/msgkit/msgkit/adapters/memory"   // registers "memory"
	_ "github.com/msgkit/msgkit/adapters/nats"     // registers "nats"
	_ "github.com/msgkit/msgkit/adapters/rabbitmq" // registers "rabbitmq"
	_ "github.com/msgkit/msgkit/adapters/redis"    // registers "redis"
	_ "github.com/msgkit/msgkit/adapters/sns"      // registers "sns"
	_ "github.com/msgkit/msgkit/adapters/sqs"      // registers "sqs"
)
