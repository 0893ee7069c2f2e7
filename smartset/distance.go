package smartset

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// EarthRadiusKm is the mean Earth radius (IUGG) used for great-circle
// distances.
const EarthRadiusKm = 6371.0088

// Distance returns the great-circle distance in kilometres between two
// locations (haversine formula). ok is false when either location has no
// coordinates.
func Distance(a, b Location) (km float64, ok bool) {
	if !a.HasCoordinates || !b.HasCoordinates {
		return 0, false
	}
	lat1, lat2 := radians(a.Lat), radians(b.Lat)
	dLat := lat2 - lat1
	dLon := radians(b.Lon - a.Lon)
	sinLat, sinLon := math.Sin(dLat/2), math.Sin(dLon/2)
	h := sinLat*sinLat + math.Cos(lat1)*math.Cos(lat2)*sinLon*sinLon
	// Rounding can push h a hair outside [0, 1] for near-antipodal points.
	h = min(max(h, 0), 1)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(h)), true
}

func radians(deg float64) float64 { return deg * math.Pi / 180 }

// ParseCoordinates parses a tcsCoordinates value, "<lat>,<lon>" in decimal
// degrees such as "35.6762,139.6503". Spaces around either number are
// allowed. Each number is an optional sign followed by digits with an optional
// fraction; exponents, hexadecimal, "Inf" and "NaN" are rejected. The latitude
// must lie in [-90, 90] and the longitude in [-180, 180].
func ParseCoordinates(s string) (lat, lon float64, err error) {
	latText, lonText, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, fmt.Errorf("coordinates %q: want \"<lat>,<lon>\" in decimal degrees", s)
	}
	if lat, err = parseDegrees(latText, "latitude", 90); err != nil {
		return 0, 0, fmt.Errorf("coordinates %q: %w", s, err)
	}
	if lon, err = parseDegrees(lonText, "longitude", 180); err != nil {
		return 0, 0, fmt.Errorf("coordinates %q: %w", s, err)
	}
	return lat, lon, nil
}

// FormatCoordinates formats lat and lon as a tcsCoordinates value that
// ParseCoordinates reads back exactly.
func FormatCoordinates(lat, lon float64) string {
	return strconv.FormatFloat(lat, 'f', -1, 64) + "," + strconv.FormatFloat(lon, 'f', -1, 64)
}

// parseDegrees parses one decimal-degrees number named what, which must lie
// in [-limit, limit].
func parseDegrees(text, what string, limit float64) (float64, error) {
	text = strings.TrimSpace(text)
	if !isDecimal(text) {
		return 0, fmt.Errorf("%s %q is not a decimal number", what, text)
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || v < -limit || v > limit {
		return 0, fmt.Errorf("%s %s is outside [-%g, %g]", what, text, limit, limit)
	}
	return v, nil
}

// isDecimal reports whether s is an optional sign, then digits with an
// optional '.' fraction, with at least one digit.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
