package awsq

import (
	"testing"

	"github.com/msgkit/msgkit/internal/testenv"
	"github.com/msgkit/msgkit/sdk"
)

// Neither a password in the endpoint URL nor the secret key or session
// token reaches an error or a log line of the config parser.
func FuzzSettingsKeepSecrets(f *testing.F) {
	for _, pw := range testenv.SecretSeeds {
		f.Add("http", pw, "127.0.0.1:4100", "")
		f.Add("https", pw, "[::1", "AKIA")
		f.Add("ftp", pw, "host:port", "")
	}
	f.Fuzz(func(t *testing.T, scheme, secret, host, accessKey string) {
		testenv.KeepsSecret(t, secret, func(pw string) error {
			_, err := ParseSettings(sdk.Config{Driver: "sqs", URL: scheme + "://user:" + pw + "@" + host}, "sqs")
			return err
		}, scheme, host)
		testenv.KeepsSecret(t, secret, func(pw string) error {
			_, err := ParseSettings(sdk.Config{Driver: "sqs", URL: scheme + "://" + host, Options: map[string]string{
				"access_key_id": accessKey, "secret_access_key": pw, "session_token": pw + "-token"}}, "sqs")
			return err
		}, scheme, host, accessKey)
	})
}
