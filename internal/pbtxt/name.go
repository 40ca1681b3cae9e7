package pbtxt

import (
	"fmt"
	"strings"
)

// ValidateModelName applies the rules Triton applies to a model name on load,
// with Triton's messages, plus those a directory name needs on disk: no NUL,
// not "." and at most 255 bytes.
func ValidateModelName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("model name must not be empty")
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("model name must not contain only whitespace characters")
	case strings.Contains(name, "..") || strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("invalid model name '%s', model name must not contain path traversal characters", name)
	case name == "." || strings.ContainsRune(name, 0):
		return fmt.Errorf("invalid model name %q, not usable as a directory name", name)
	case len(name) > 255:
		return fmt.Errorf("invalid model name '%s...', longer than 255 bytes", name[:32])
	}
	return nil
}

// ModelNameFrom turns a file or directory name into a model name: the
// extension is dropped and anything but letters, digits, '_', '-' and '.' is
// replaced by '_'.
func ModelNameFrom(base string) string {
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), ".")
}
