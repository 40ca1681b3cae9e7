// Package pbtxt reads and writes Triton's config.pbtxt: parse (prototext into the
// generated inference.ModelConfig), print canonically, validate with Triton's rules
// and messages, auto-complete for ONNX models as Triton's ONNX Runtime backend does,
// and apply per-pool overrides. The rules it implements are written up in
// docs/reference/triton-config-rules.md.
package pbtxt

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"

	"github.com/tritongate/tritongate/proto/inference"
)

// Pos is a 1-based line and column in a config file.
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// SyntaxError is a config.pbtxt that cannot be parsed. Triton reports it as
// "failed to read text proto from <path>"; Msg is the parser's detail.
type SyntaxError struct {
	File string
	Pos  Pos
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%s: failed to read text proto: %s", e.File, e.Pos, e.Msg)
}

// Source is a parsed config.pbtxt: the message plus what is needed to point at
// the text of a field.
type Source struct {
	File   string
	Config *inference.ModelConfig
	index  map[string]Pos
}

// Position returns where the field at path (for example "input[1].dims[0]",
// "dynamic_batching.preferred_batch_size") is written, falling back to the
// closest enclosing field, then to the top of the file.
func (s *Source) Position(path string) Pos {
	if s == nil || s.index == nil {
		return Pos{1, 1}
	}
	p := canonicalPath(path)
	for p != "" {
		if pos, ok := s.index[p]; ok {
			return pos
		}
		if i := strings.LastIndexByte(p, '.'); i >= 0 {
			p = p[:i]
		} else {
			p = ""
		}
	}
	return Pos{1, 1}
}

// Parse parses config text. name is used in error messages (usually the path).
// Unknown fields and type errors are syntax errors, as they are for Triton.
func Parse(name string, data []byte) (*Source, error) {
	cfg := &inference.ModelConfig{}
	if err := prototext.Unmarshal(data, cfg); err != nil {
		return nil, syntaxError(name, data, err)
	}
	return &Source{File: name, Config: cfg, index: indexPositions(data)}, nil
}

// ParseFile reads and parses a config.pbtxt.
func ParseFile(path string) (*Source, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

var posInError = regexp.MustCompile(`\(line (\d+):(\d+)\): `)

// syntaxError turns a prototext error ("proto: (line 3:5): unknown field: x")
// into a SyntaxError with the position split out.
func syntaxError(name string, data []byte, err error) *SyntaxError {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "proto: ")
	msg = strings.TrimPrefix(msg, "proto:\u00a0") // protobuf-go sometimes uses a non-breaking space
	e := &SyntaxError{File: name, Pos: Pos{1, 1}}
	if m := posInError.FindStringSubmatchIndex(msg); m != nil {
		line, _ := strconv.Atoi(msg[m[2]:m[3]])
		col, _ := strconv.Atoi(msg[m[4]:m[5]])
		e.Pos = Pos{line, col}
		msg = msg[:m[0]] + msg[m[1]:]
		if f := fieldAt(data, e.Pos); f != "" && !strings.Contains(msg, f) {
			msg = f + ": " + msg
		}
	} else if strings.Contains(msg, "unexpected EOF") {
		e.Pos = endPos(data)
	}
	e.Msg = strings.TrimSpace(msg)
	return e
}
