package driver_test

import (
	"testing"

	"github.com/msgkit/msgkit/sdk/driver"
)

func TestSameMetadataIsOneMapNotEqualContent(t *testing.T) {
	md := map[string]string{"k": "v"}
	cases := []struct {
		name string
		a, b map[string]string
		want bool
	}{
		{"one map", md, md, true},
		{"equal maps", md, map[string]string{"k": "v"}, false},
		{"one nil", md, nil, false},
		{"both nil", nil, nil, false},
		{"empty and nil", map[string]string{}, nil, false},
	}
	for _, c := range cases {
		if got := driver.SameMetadata(&driver.Message{Metadata: c.a}, &driver.Message{Metadata: c.b}); got != c.want {
			t.Errorf("%s: SameMetadata = %v, want %v", c.name, got, c.want)
		}
	}
}
