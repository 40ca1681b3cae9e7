package pbtxt

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
)

// Problem is one reason a config is rejected, worded as Triton words it so that
// scripts matching Triton's messages keep working.
type Problem struct {
	// Path is the offending field ("input[1].dims", "instance_group[0]"), or ""
	// for the config as a whole.
	Path string
	// Code is the status Triton attaches (InvalidArgument for most rules,
	// Internal, Unavailable or Unimplemented for some).
	Code codes.Code
	Msg  string
	// Version is the model version the problem was found in ("" if it is not
	// about one version's model file).
	Version string
}

func (p Problem) Error() string { return p.Msg }

// Reason renders the problem as Triton renders a failed load's state reason:
// "Invalid argument: <message>".
func (p Problem) Reason() string { return CodeString(p.Code) + ": " + p.Msg }

// CodeString is the name Triton gives a status code in messages
// ("Invalid argument").
func CodeString(c codes.Code) string {
	switch c {
	case codes.InvalidArgument:
		return "Invalid argument"
	case codes.NotFound:
		return "Not found"
	case codes.Unavailable:
		return "Unavailable"
	case codes.Unimplemented:
		return "Unsupported"
	case codes.AlreadyExists:
		return "Already exists"
	case codes.Internal:
		return "Internal"
	}
	return "Unknown"
}

// Problems is a non-empty list of problems; as an error it reads as the first
// one (the one Triton would report) followed by a count of the rest.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 0 {
		return "no problems"
	}
	if len(ps) == 1 {
		return ps[0].Msg
	}
	return fmt.Sprintf("%s (and %d more)", ps[0].Msg, len(ps)-1)
}

// Strings renders each problem with its position in src (may be nil) as
// "file:line:col: message".
func (ps Problems) Strings(src *Source, file string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		v := ""
		if p.Version != "" {
			v = "version " + p.Version + ": "
		}
		out[i] = fmt.Sprintf("%s:%s: %s%s", file, src.Position(p.Path), v, p.Msg)
	}
	return out
}

// Contains reports whether any problem's message contains substr.
func (ps Problems) Contains(substr string) bool {
	for _, p := range ps {
		if strings.Contains(p.Msg, substr) {
			return true
		}
	}
	return false
}

func invalid(path, format string, args ...any) Problem {
	return Problem{Path: path, Code: codes.InvalidArgument, Msg: fmt.Sprintf(format, args...)}
}
