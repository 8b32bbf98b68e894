package redis

import (
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// The password of a URL never reaches an error or a log line of the
// config parser, nor the name errors and logs give the broker, whatever
// the URL around it.
func FuzzURLKeepsPassword(f *testing.F) {
	testenv.FuzzURLPassword(f, "redis", func(url string) (string, error) {
		s, err := parseSettings(sdk.Config{Driver: DriverName, URL: url})
		if err != nil {
			return "", err
		}
		return s.where(), nil
	})
}

// The same for a Sentinel URL, whose host part is a list of sentinels.
func FuzzSentinelURLKeepsPassword(f *testing.F) {
	testenv.FuzzURLPassword(f, "redis+sentinel", func(url string) (string, error) {
		s, err := parseSettings(sdk.Config{Driver: DriverName, URL: url + "?master=m"})
		if err != nil {
			return "", err
		}
		return s.where(), nil
	})
}

// The same for a Redis Cluster URL, whose host part is a list of nodes.
func FuzzClusterURLKeepsPassword(f *testing.F) {
	testenv.FuzzURLPassword(f, "redis+cluster", func(url string) (string, error) {
		s, err := parseSettings(sdk.Config{Driver: DriverName, URL: url})
		if err != nil {
			return "", err
		}
		return s.where(), nil
	})
}
