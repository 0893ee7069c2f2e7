package smartset

import (
	"math"
	"strings"
	"testing"
)

func TestDistance(t *testing.T) {
	at := func(lat, lon float64) Location { return Location{HasCoordinates: true, Lat: lat, Lon: lon} }
	tokyo := at(35.6762, 139.6503)
	austin := at(30.2672, -97.7431)
	sacramento := at(38.5816, -121.4944)

	tests := []struct {
		name     string
		a, b     Location
		min, max float64
		wantOK   bool
	}{
		{name: "Tokyo to Austin", a: tokyo, b: austin, min: 10500, max: 10600, wantOK: true},
		{name: "Austin to Tokyo is the same", a: austin, b: tokyo, min: 10500, max: 10600, wantOK: true},
		{name: "Austin to Sacramento", a: austin, b: sacramento, min: 2300, max: 2450, wantOK: true},
		{name: "Tokyo to Sacramento", a: tokyo, b: sacramento, min: 8200, max: 8400, wantOK: true},
		{name: "identical points", a: austin, b: austin, min: 0, max: 0, wantOK: true},
		{name: "antipodes on the equator", a: at(0, 0), b: at(0, 180), min: 20015, max: 20015.2, wantOK: true},
		{name: "pole to pole", a: at(90, 0), b: at(-90, 0), min: 20015, max: 20015.2, wantOK: true},
		{name: "across the antimeridian", a: at(0, 179.5), b: at(0, -179.5), min: 111, max: 111.4, wantOK: true},
		{name: "first without coordinates", a: Location{Name: "Mars"}, b: austin},
		{name: "second without coordinates", a: austin, b: Location{Name: "Mars"}},
		{name: "neither with coordinates", a: Location{}, b: Location{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			km, ok := Distance(tt.a, tt.b)
			if ok != tt.wantOK {
				t.Fatalf("Distance ok = %v, want %v", ok, tt.wantOK)
			}
			if km < tt.min || km > tt.max || math.IsNaN(km) {
				t.Errorf("Distance = %.3f km, want in [%g, %g]", km, tt.min, tt.max)
			}
		})
	}
}

func TestParseCoordinates(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		lat, lon float64
		wantErr  string // substring of the error; "" for success
	}{
		{name: "Tokyo", in: "35.6762,139.6503", lat: 35.6762, lon: 139.6503},
		{name: "spaces around the numbers", in: "  30.2672 ,\t-97.7431 ", lat: 30.2672, lon: -97.7431},
		{name: "explicit plus sign", in: "+38.5816,-121.4944", lat: 38.5816, lon: -121.4944},
		{name: "integers", in: "0,0", lat: 0, lon: 0},
		{name: "leading and trailing dot", in: ".5,5.", lat: 0.5, lon: 5},
		{name: "upper bounds", in: "90,180", lat: 90, lon: 180},
		{name: "lower bounds", in: "-90,-180", lat: -90, lon: -180},

		{name: "empty", in: "", wantErr: `want "<lat>,<lon>"`},
		{name: "one number", in: "35.6762", wantErr: `want "<lat>,<lon>"`},
		{name: "three numbers", in: "1,2,3", wantErr: `longitude "2,3" is not a decimal number`},
		{name: "missing latitude", in: " ,139", wantErr: `latitude "" is not a decimal number`},
		{name: "missing longitude", in: "35,", wantErr: `longitude "" is not a decimal number`},
		{name: "words", in: "north,east", wantErr: `latitude "north" is not a decimal number`},
		{name: "NaN", in: "NaN,0", wantErr: "not a decimal number"},
		{name: "infinity", in: "0,-Inf", wantErr: "not a decimal number"},
		{name: "exponent", in: "1e1,0", wantErr: "not a decimal number"},
		{name: "hexadecimal", in: "0x10,0", wantErr: "not a decimal number"},
		{name: "underscore", in: "1_0,0", wantErr: "not a decimal number"},
		{name: "lone dot", in: ".,0", wantErr: "not a decimal number"},
		{name: "two dots", in: "1.2.3,0", wantErr: "not a decimal number"},
		{name: "two signs", in: "--1,0", wantErr: "not a decimal number"},
		{name: "space inside a number", in: "35 .6,0", wantErr: "not a decimal number"},
		{name: "latitude above 90", in: "90.0001,0", wantErr: "latitude 90.0001 is outside [-90, 90]"},
		{name: "latitude below -90", in: "-91,0", wantErr: "latitude -91 is outside [-90, 90]"},
		{name: "longitude above 180", in: "0,180.5", wantErr: "longitude 180.5 is outside [-180, 180]"},
		{name: "longitude below -180", in: "0,-181", wantErr: "longitude -181 is outside [-180, 180]"},
		{name: "huge number", in: "1" + strings.Repeat("0", 400) + ",0", wantErr: "is outside [-90, 90]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lat, lon, err := ParseCoordinates(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseCoordinates(%q) = %v, %v, want an error containing %q", tt.in, lat, lon, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCoordinates(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.in) {
					t.Errorf("ParseCoordinates(%q) error = %q, want it to quote the input", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCoordinates(%q) error: %v", tt.in, err)
			}
			if lat != tt.lat || lon != tt.lon {
				t.Errorf("ParseCoordinates(%q) = %v, %v, want %v, %v", tt.in, lat, lon, tt.lat, tt.lon)
			}
		})
	}
}

func TestFormatCoordinates(t *testing.T) {
	tests := []struct {
		name     string
		lat, lon float64
		want     string
	}{
		{name: "Tokyo", lat: 35.6762, lon: 139.6503, want: "35.6762,139.6503"},
		{name: "negative longitude", lat: 30.2672, lon: -97.7431, want: "30.2672,-97.7431"},
		{name: "integers", lat: -90, lon: 180, want: "-90,180"},
		{name: "tiny", lat: 1e-7, lon: 0, want: "0.0000001,0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FormatCoordinates(tt.lat, tt.lon); got != tt.want {
				t.Errorf("FormatCoordinates(%v, %v) = %q, want %q", tt.lat, tt.lon, got, tt.want)
			}
		})
	}
}

func FuzzParseCoordinates(f *testing.F) {
	for _, seed := range []string{
		"35.6762,139.6503", " 30.2672 , -97.7431 ", "90,180", "-90,-180", "0,0",
		".5,5.", "1e1,0", "NaN,0", "Inf,-Inf", "0x10,1", "1,2,3", "", ",", "+-1,0",
		"90.0000000000000000001,0", "-0,-0",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lat, lon, err := ParseCoordinates(s)
		if err != nil {
			if lat != 0 || lon != 0 {
				t.Errorf("ParseCoordinates(%q) = %v, %v with error %v, want zeros", s, lat, lon, err)
			}
			return
		}
		if math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
			t.Fatalf("ParseCoordinates(%q) = %v, %v: out of range", s, lat, lon)
		}
		text := FormatCoordinates(lat, lon)
		lat2, lon2, err := ParseCoordinates(text)
		if err != nil {
			t.Fatalf("ParseCoordinates(FormatCoordinates(%v, %v) = %q) error: %v", lat, lon, text, err)
		}
		if lat2 != lat || lon2 != lon {
			t.Fatalf("round trip of %q via %q = %v, %v, want %v, %v", s, text, lat2, lon2, lat, lon)
		}
	})
}
