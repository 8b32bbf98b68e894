package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/sdk"
)

// outgoing holds the flags that describe a message to send.
type outgoing struct {
	data        string
	dataSet     bool
	key         string
	eventType   string
	id          string
	contentType string
	headers     []string
}

func (o *outgoing) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.data, "data", "", "payload (default: read from stdin)")
	f.StringVar(&o.key, "key", "", "ordering key")
	f.StringVar(&o.eventType, "type", "", "event type (ce-type)")
	f.StringVar(&o.id, "id", "", "message id (default: a new UUID)")
	f.StringVar(&o.contentType, "content-type", "", "content type of the payload")
	f.StringArrayVar(&o.headers, "header", nil, "metadata entry k=v (repeatable)")
}

// message builds the message from the flags, the payload from --data or
// stdin.
func (o *outgoing) message(cmd *cobra.Command) (*sdk.Message, error) {
	var payload []byte
	if cmd.Flags().Changed("data") {
		payload = []byte(o.data)
	} else {
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read the payload from stdin: %w", err)
		}
		payload = b
	}
	m := sdk.NewMessage(payload)
	if o.id != "" {
		m.ID = o.id
	}
	m.OrderingKey, m.EventType, m.ContentType = o.key, o.eventType, o.contentType
	// A header that a flag also sets would be overwritten by the flag's
	// value: refused, like a header given twice, rather than dropped.
	byFlag := map[string]string{sdk.KeyOrderingKey: "--key", sdk.KeyEventType: "--type", sdk.KeyContentType: "--content-type"}
	seen := map[string]bool{}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return nil, withCode(exitUsage, fmt.Errorf("--header %q: want key=value", h))
		}
		if seen[k] {
			return nil, withCode(exitUsage, fmt.Errorf("--header %q: %q is given twice; a message carries one value per key", h, k))
		}
		seen[k] = true
		if flag := byFlag[k]; flag != "" && cmd.Flags().Changed(strings.TrimPrefix(flag, "--")) {
			return nil, withCode(exitUsage, fmt.Errorf("--header %q: %s sets %q too; give one of them", h, flag, k))
		}
		if err := sdk.CheckMetadata(k, v); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--header %q: %w", h, err))
		}
		m.Set(k, v)
	}
	return m, nil
}

func publishCmd(g *globals) *cobra.Command {
	var o outgoing
	cmd := &cobra.Command{
		Use:   "publish TOPIC",
		Short: "Publish one message (payload from --data or stdin) and print its id",
		Example: `  msgkit publish orders --data '{"id":42}' --type order.created --key customer-7 --header tenant=acme
  gzip -c report.csv | msgkit publish reports --content-type application/gzip`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := o.message(cmd)
			if err != nil {
				return err
			}
			c, err := g.open(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer g.closeClient(c)
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			if err := c.Publish(ctx, args[0], m); err != nil {
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"id": m.ID, "topic": args[0]})
			}
			fmt.Fprintln(cmd.OutOrStdout(), m.ID)
			return nil
		},
	}
	o.flags(cmd)
	return cmd
}
