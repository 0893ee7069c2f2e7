package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in TOML as a Go duration string such
// as "5s", "200ms" or "1m30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration: %w", text, err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration the way UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}
