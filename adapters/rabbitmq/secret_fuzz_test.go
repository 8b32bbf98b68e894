package rabbitmq

import (
	"errors"
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// The password of a URL never reaches an error or a log line of the
// config parser, nor the name errors and logs give the broker, whatever
// the URL around it.
func FuzzURLKeepsPassword(f *testing.F) {
	for _, pw := range testenv.SecretSeeds {
		f.Add("app", pw, "127.0.0.1:1234", "/x")
		f.Add("", pw, "[::1", "")
		f.Add("app", pw, "host:port", "/a/b?c=d")
	}
	f.Fuzz(func(t *testing.T, user, password, host, path string) {
		testenv.KeepsSecret(t, password, func(pw string) error {
			s, err := parseSettings(sdk.Config{Driver: DriverName, URL: "amqp://" + user + ":" + pw + "@" + host + path})
			if err != nil {
				return err
			}
			return errors.New(s.where()) // what connection errors and logs name the broker by
		}, user, host, path)
	})
}
