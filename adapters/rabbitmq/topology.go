package rabbitmq

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/msgkit/msgkit/adapters/internal/topicname"
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

// names returns the names a subscription to topic in group uses.
func (s settings) names(topic, group string) names {
	n := s.publishNames(topic)
	if n.queue == "" {
		n.queue = topic + "." + group
	}
	return n
}

// publishNames returns the names a publish to topic uses: the queue only
// for a reply topic, whose queue is its name.
func (s settings) publishNames(topic string) names {
	if strings.HasPrefix(topic, sdk.ReplyTopicPrefix) {
		// A client's private reply topic: an exclusive, auto-deleted queue
		// reached through the default exchange, so nothing durable is left
		// behind when the client goes away.
		return names{routingKey: topic, queue: topic}
	}
	n := names{exchange: topic}
	if s.Exchange != "" {
		n.exchange, n.routingKey = s.Exchange, topic
	}
	return n
}

// maxName is the most bytes AMQP carries in an exchange or queue name or a
// routing key (a short string). The client library cannot encode a longer
// one and closes the whole connection over it, taking every other
// subscription or publish on it down, so such names are refused before
// they reach a channel.
const maxName = 255

// checkNames refuses a topic (and group) whose names AMQP cannot carry,
// or RabbitMQ cannot keep as they are (topicname.Unprintable):
// the exchange and routing key a publish uses, and with queues the queues
// a subscription declares.
func (s settings) checkNames(topic string, n names, queues bool) error {
	type name struct{ what, value string }
	list := []name{{"exchange", n.exchange}, {"routing key", n.routingKey}}
	if queues {
		list = append(list, name{"queue", n.queue})
		if s.DeadLetter && n.exchange != "" {
			list = append(list, name{"dead-letter queue", n.queue + ".dlq"})
		}
	}
	for _, nm := range list {
		if len(nm.value) > maxName {
			return sdk.InvalidName(fmt.Errorf("rabbitmq: topic %s makes the %s %s, and AMQP carries at most %d bytes: use a shorter topic or group",
				sdk.QuoteName(topic), nm.what, sdk.QuoteName(nm.value), maxName))
		}
		if odd := topicname.Unprintable(nm.value); odd != "" {
			return sdk.InvalidName(fmt.Errorf("rabbitmq: topic %s makes the %s %s, which holds %s; RabbitMQ cannot declare and then find such a name: use printable UTF-8 names",
				sdk.QuoteName(topic), nm.what, sdk.QuoteName(nm.value), odd))
		}
	}
	return nil
}

func (s settings) exchangeKind() string {
	if s.Exchange != "" {
		return amqp.ExchangeTopic
	}
	return amqp.ExchangeFanout
}

func (s settings) declareExchange(ch *amqp.Channel, n names) error {
	if s.NoDeclare {
		if err := ch.ExchangeDeclarePassive(n.exchange, s.exchangeKind(), true, false, false, false, nil); err != nil {
			return explainCheckError(fmt.Sprintf("check exchange %q", n.exchange), err)
		}
		return nil
	}
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
	if s.NoDeclare {
		// The platform's queue, bound by the platform: only its existence
		// is checked.
		if _, err := ch.QueueDeclarePassive(n.queue, true, false, false, false, nil); err != nil {
			return explainCheckError(fmt.Sprintf("check queue %q", n.queue), err)
		}
		return nil
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

// inequivalentArg finds the argument RabbitMQ names when a declare differs
// from the object that exists ("inequivalent arg 'x-queue-type' for queue
// ...").
var inequivalentArg = regexp.MustCompile(`inequivalent arg '([^']+)'`)

// differingSetting says which of the driver's settings, or which argument
// it never sets, an inequivalent argument comes from.
func differingSetting(arg string) string {
	switch arg {
	case amqp.QueueTypeArg:
		return "its queue type (x-queue-type) differs from queue_type"
	case "x-dead-letter-exchange", "x-dead-letter-routing-key":
		return "its dead-lettering (" + arg + ") differs from dead_letter"
	case "x-delivery-limit":
		return "its delivery limit (x-delivery-limit) differs from delivery_limit"
	case "type":
		return "its kind differs (msgkit declares a fanout exchange per topic, or one topic exchange with the exchange option)"
	case "durable", "auto_delete", "exclusive":
		return "it is not " + map[string]string{"durable": "durable", "auto_delete": "kept when unused (auto_delete)", "exclusive": "shared (exclusive)"}[arg] + " as msgkit declares it"
	}
	return fmt.Sprintf("it has the argument %q, which msgkit does not set: someone else (the platform?) declared it", arg)
}

// missingError is an exchange or queue that declare: false found missing:
// a refusal, not retried, since msgkit will not create it.
type missingError struct{ err error }

func (e *missingError) Error() string { return e.err.Error() }
func (e *missingError) Unwrap() error { return e.err }

// explainCheckError explains a failed passive declare (declare: false).
func explainCheckError(what string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return &missingError{fmt.Errorf("rabbitmq: %s: it does not exist, and declare is false: the platform must declare it (and bind the queue to its exchange), or set declare: true: %w", what, err)}
	}
	return explainDeclareError(what, err)
}

func explainDeclareError(what string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		why := "it already exists with other settings (queue_type, dead_letter, delivery_limit or exchange kind)"
		if m := inequivalentArg.FindStringSubmatch(ae.Reason); m != nil {
			why = "it already exists and " + differingSetting(m[1])
		}
		return fmt.Errorf("rabbitmq: %s: %s; configure the same settings, delete it, or set declare: false to use the broker's exchanges and queues as they are: %w", what, why, err)
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
