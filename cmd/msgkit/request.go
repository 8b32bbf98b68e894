package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/msgkit/msgkit/sdk"
)

func requestCmd(g *globals) *cobra.Command {
	var o outgoing
	cmd := &cobra.Command{
		Use:   "request TOPIC",
		Short: "Send a request and print the reply, or the responder's error code",
		Long: `request sends one request to TOPIC (payload from --data or stdin) and waits
for the reply until --timeout. It prints the reply's payload (with --json the
whole reply). When the responder refuses (sdk.Reject) or fails, it prints the
code and message to stderr and exits 4.`,
		Example: `  msgkit request prices --data '{"sku":"A1"}' --timeout 5s
  msgkit request prices --json < query.json`,
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
			reply, err := c.Request(ctx, args[0], m)
			var re *sdk.RemoteError
			switch {
			case errors.As(err, &re):
				code := re.Code
				if code == "" {
					code = "(none)"
				}
				return withCode(exitRemoteError, fmt.Errorf("the responder answered with an error: code %s: %s", code, re.Message))
			case err != nil:
				return err
			}
			if g.json {
				return writeJSON(cmd.OutOrStdout(), toJSON(reply))
			}
			_, err = cmd.OutOrStdout().Write(reply.Payload)
			return err
		},
	}
	o.flags(cmd)
	return cmd
}
