package rabbitmq

import (
	"errors"
	"fmt"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/sdk"
)

// names are the AMQP objects one topic and group map to.
//
//	per-topic mode (default): exchange <topic> (fanout), queue <topic>.<group>
//	shared mode (exchange: X): exchange X (topic), routing key <topic>, queue <topic>.<group>
//	dead_letter: exchange <queue>.dlx (fanout) and queue <queue>.dlq
type names struct {
	exchange   string
	routingKey string // publish key; also the binding key in shared mode
	queue      string
}

func (s settings) names(topic, group string) names {
	if strings.HasPrefix(topic, sdk.ReplyTopicPrefix) {
		// A client's private reply topic: an exclusive, auto-deleted queue
		// reached through the default exchange, so nothing durable is left
		// behind when the client goes away.
		return names{routingKey: topic, queue: topic}
	}
	n := names{exchange: topic, queue: topic + "." + group}
	if s.Exchange != "" {
		n.exchange, n.routingKey = s.Exchange, topic
	}
	return n
}

func (s settings) exchangeKind() string {
	if s.Exchange != "" {
		return amqp.ExchangeTopic
	}
	return amqp.ExchangeFanout
}

func (s settings) declareExchange(ch *amqp.Channel, n names) error {
	if err := ch.ExchangeDeclare(n.exchange, s.exchangeKind(), true, false, false, false, nil); err != nil {
		return explainDeclareError(fmt.Sprintf("declare exchange %q", n.exchange), err)
	}
	return nil
}

// declareGroup declares the exchange, the group's durable queue and its
// binding, and the dead-letter pair when configured. Declaring is
// idempotent, so it runs again on every (re)connect.
func (s settings) declareGroup(ch *amqp.Channel, n names) error {
	if n.exchange == "" { // reply queue
		if _, err := ch.QueueDeclare(n.queue, false, true, true, false, nil); err != nil {
			return explainDeclareError(fmt.Sprintf("declare reply queue %q", n.queue), err)
		}
		return nil
	}
	if err := s.declareExchange(ch, n); err != nil {
		return err
	}
	args := amqp.Table{}
	if s.QueueType == "quorum" {
		args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
		if s.DeliveryLimit > 0 {
			args["x-delivery-limit"] = s.DeliveryLimit
		}
	}
	if s.DeadLetter {
		dlx, dlq := n.queue+".dlx", n.queue+".dlq"
		if err := ch.ExchangeDeclare(dlx, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return explainDeclareError(fmt.Sprintf("declare dead-letter exchange %q", dlx), err)
		}
		if _, err := ch.QueueDeclare(dlq, true, false, false, false, amqp.Table{amqp.QueueTypeArg: s.QueueType}); err != nil {
			return explainDeclareError(fmt.Sprintf("declare dead-letter queue %q", dlq), err)
		}
		if err := ch.QueueBind(dlq, "", dlx, false, nil); err != nil {
			return explainDeclareError(fmt.Sprintf("bind dead-letter queue %q", dlq), err)
		}
		args["x-dead-letter-exchange"] = dlx
	}
	if _, err := ch.QueueDeclare(n.queue, true, false, false, false, args); err != nil {
		return explainDeclareError(fmt.Sprintf("declare queue %q", n.queue), err)
	}
	if err := ch.QueueBind(n.queue, n.routingKey, n.exchange, false, nil); err != nil {
		return explainDeclareError(fmt.Sprintf("bind queue %q to exchange %q", n.queue, n.exchange), err)
	}
	return nil
}

func explainDeclareError(what string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return fmt.Errorf("rabbitmq: %s: it already exists with other settings (queue_type, dead_letter, delivery_limit or exchange kind); "+
			"delete it or configure the same settings: %w", what, err)
	}
	if isAccessRefused(err) {
		return fmt.Errorf("rabbitmq: %s: %s: %w", what, accessRefusedAdvice, err)
	}
	return fmt.Errorf("rabbitmq: %s: %w", what, err)
}

// accessRefusedAdvice explains a 403 on a channel: the broker is up and
// the user authenticated, but its permissions in the vhost do not cover
// the exchange or queue.
const accessRefusedAdvice = "the broker refused it: the user has no permission for this exchange or queue in the vhost " +
	"(its configure, write and read patterns; see docs/security.md)"

func isAccessRefused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.AccessRefused
}
