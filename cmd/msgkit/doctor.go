package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/msgkit/msgkit/sdk"
)

// report is what doctor found.
type report struct {
	Driver       string           `json:"driver"`
	URL          string           `json:"url"`
	Reachable    bool             `json:"reachable"`
	Broker       string           `json:"broker,omitempty"`
	BrokerError  string           `json:"broker_error,omitempty"`
	TLS          string           `json:"tls"`
	Capabilities sdk.Capabilities `json:"capabilities"`
	Error        string           `json:"error,omitempty"`
}

func doctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Connect and report the broker, its version, TLS and what the driver guarantees",
		Long: `doctor opens the configured driver as a service would and reports the broker
and its version, the transport security in use, and the capabilities the
driver declares (what the conformance suite holds it to). When it cannot
connect it prints Open's error, which says what was wrong and how to fix it,
and exits 5 (2 for a config error).`,
		Example: `  msgkit --config service.yaml doctor
  MESSAGING_DRIVER=rabbitmq MESSAGING_URL=amqps://app:secret@mq.internal/prod msgkit doctor --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			r := report{Driver: cfg.DriverName(), URL: sdk.RedactURL(cfg.URL), TLS: tlsState(cfg)}
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				r.Error = err.Error()
				if g.json {
					_ = writeJSON(cmd.OutOrStdout(), r)
				} else {
					printReport(cmd.OutOrStdout(), r)
				}
				return err
			}
			defer g.closeClient(c)
			r.Reachable, r.Capabilities = true, c.Capabilities()
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if b, err := brokerVersion(ctx, c, cfg); err != nil {
				r.BrokerError = err.Error()
			} else {
				r.Broker = b
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			printReport(cmd.OutOrStdout(), r)
			return nil
		},
	}
}

func printReport(w io.Writer, r report) {
	fmt.Fprintf(w, "driver:       %s\n", r.Driver)
	if r.URL != "" {
		fmt.Fprintf(w, "url:          %s\n", r.URL)
	}
	fmt.Fprintf(w, "tls:          %s\n", r.TLS)
	if !r.Reachable {
		fmt.Fprintf(w, "reachable:    no\n")
		return
	}
	fmt.Fprintf(w, "reachable:    yes\n")
	if r.BrokerError != "" {
		fmt.Fprintf(w, "broker:       unknown (%s)\n", r.BrokerError)
	} else {
		fmt.Fprintf(w, "broker:       %s\n", r.Broker)
	}
	c := r.Capabilities
	fmt.Fprintf(w, "capabilities:\n")
	fmt.Fprintf(w, "  consumer groups:            %v\n", c.ConsumerGroups)
	fmt.Fprintf(w, "  ordering:                   %s\n", c.Ordering)
	fmt.Fprintf(w, "  durable groups:             %v\n", c.DurableGroups)
	fmt.Fprintf(w, "  new groups receive history: %v\n", c.NewGroupsReceiveHistory)
	fmt.Fprintf(w, "  chooses group start:        %v\n", c.ChoosesGroupStart)
	fmt.Fprintf(w, "  removes groups:             %v\n", c.RemovesGroups)
	fmt.Fprintf(w, "  persistent:                 %v\n", c.Persistent)
	fmt.Fprintf(w, "  request/reply:              %v\n", c.RequestReply)
	fmt.Fprintf(w, "  max payload bytes:          %s\n", limit(c.MaxPayloadBytes))
	fmt.Fprintf(w, "  max metadata entries:       %s\n", limit(c.MaxMetadataEntries))
	fmt.Fprintf(w, "  max metadata bytes:         %s\n", limit(c.MaxMetadataBytes))
}

func limit(n int) string {
	if n == 0 {
		return "no limit"
	}
	return fmt.Sprint(n)
}

// tlsState says what transport security the config asks for.
func tlsState(cfg sdk.Config) string {
	opts := cfg.Options
	on := opts["tls"] == "true"
	if u, err := url.Parse(cfg.URL); err == nil {
		switch u.Scheme {
		case "amqps", "rediss", "tls", "https", "rediss+sentinel", "rediss+cluster":
			on = true
		}
	}
	if strings.Contains(cfg.URL, "tls://") {
		on = true
	}
	switch {
	case cfg.DriverName() == "memory":
		return "not used (in-process)"
	case !on:
		return "off (plain connection)"
	case opts["tls_insecure_skip_verify"] == "true":
		return "on, WITHOUT verifying the server's certificate (tls_insecure_skip_verify)"
	case opts["tls_cert_file"] != "" || opts["tls_cert_pem"] != "":
		return "on, server verified, client certificate (mutual TLS)"
	}
	return "on, server verified"
}

// brokerVersion asks the broker what it is, through the native client.
func brokerVersion(ctx context.Context, c *sdk.Client, cfg sdk.Config) (string, error) {
	var conn *amqp.Connection
	var rc goredis.UniversalClient
	var nc *nats.Conn
	var kc *kgo.Client
	switch {
	case c.As(&conn):
		if conn == nil {
			return "", fmt.Errorf("not connected")
		}
		return fmt.Sprintf("%v %v", conn.Properties["product"], conn.Properties["version"]), nil
	case c.As(&rc):
		info, err := rc.Info(ctx, "server").Result()
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				return "Redis " + v, nil
			}
		}
		return "Redis (version not reported)", nil
	case c.As(&nc):
		return fmt.Sprintf("NATS %s (server %s, JetStream)", nc.ConnectedServerVersion(), nc.ConnectedServerName()), nil
	case c.As(&kc):
		resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kc)
		if err != nil {
			return "", err
		}
		id := "unknown"
		if resp.ClusterID != nil {
			id = *resp.ClusterID
		}
		return fmt.Sprintf("Kafka cluster %s, %d broker(s), controller %d", id, len(resp.Brokers), resp.ControllerID), nil
	}
	switch cfg.DriverName() {
	case "sqs", "sns":
		ep := cfg.URL
		if ep == "" {
			ep = "the AWS endpoint of the region"
		}
		return fmt.Sprintf("AWS %s at %s", strings.ToUpper(cfg.DriverName()), sdk.RedactURL(ep)), nil
	case "memory":
		return "in-process memory broker", nil
	}
	return "", fmt.Errorf("the %s driver gives no way to ask the broker its version", cfg.DriverName())
}
