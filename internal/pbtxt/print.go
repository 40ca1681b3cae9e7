package pbtxt

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Format prints a message as canonical text format in the style of Triton's
// examples: fields in declaration order, two-space indent, repeated scalars as
// "dims: [ 3, 224, 224 ]", repeated messages and maps (sorted by key) as
// "input [ { ... }, { ... } ]", proto3 defaults omitted. The output is stable
// (unlike prototext's, which is deliberately randomized) and parses back to an
// equal message.
func Format(m proto.Message) []byte {
	var b bytes.Buffer
	writeFields(&b, m.ProtoReflect(), 0)
	return b.Bytes()
}

func indent(b *bytes.Buffer, n int) {
	for range n {
		b.WriteString("  ")
	}
}

func writeFields(b *bytes.Buffer, m protoreflect.Message, depth int) {
	fds := m.Descriptor().Fields()
	for i := range fds.Len() {
		fd := fds.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		indent(b, depth)
		b.WriteString(string(fd.Name()))
		switch {
		case fd.IsMap():
			writeMap(b, fd, v.Map(), depth)
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			b.WriteString(" [\n")
			for j := range l.Len() {
				indent(b, depth+1)
				b.WriteString("{\n")
				writeFields(b, l.Get(j).Message(), depth+2)
				indent(b, depth+1)
				b.WriteString("}")
				if j < l.Len()-1 {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			indent(b, depth)
			b.WriteString("]\n")
		case fd.IsList():
			l := v.List()
			b.WriteString(": [ ")
			for j := range l.Len() {
				if j > 0 {
					b.WriteString(", ")
				}
				writeScalar(b, fd, l.Get(j))
			}
			b.WriteString(" ]\n")
		case fd.Message() != nil && isEmpty(v.Message()):
			b.WriteString(" { }\n")
		case fd.Message() != nil:
			b.WriteString(" {\n")
			writeFields(b, v.Message(), depth+1)
			indent(b, depth)
			b.WriteString("}\n")
		default:
			b.WriteString(": ")
			writeScalar(b, fd, v)
			b.WriteString("\n")
		}
	}
}

func isEmpty(m protoreflect.Message) bool {
	empty := true
	m.Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
		empty = false
		return false
	})
	return empty
}

func writeMap(b *bytes.Buffer, fd protoreflect.FieldDescriptor, mp protoreflect.Map, depth int) {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, c protoreflect.MapKey) int {
		switch a.Interface().(type) {
		case string:
			return cmp.Compare(a.String(), c.String())
		case bool:
			return cmp.Compare(boolInt(a.Bool()), boolInt(c.Bool()))
		case uint32, uint64:
			return cmp.Compare(a.Uint(), c.Uint())
		default:
			return cmp.Compare(a.Int(), c.Int())
		}
	})
	b.WriteString(" [\n")
	for j, k := range keys {
		indent(b, depth+1)
		b.WriteString("{\n")
		indent(b, depth+2)
		b.WriteString("key: ")
		writeScalar(b, fd.MapKey(), k.Value())
		b.WriteString("\n")
		indent(b, depth+2)
		b.WriteString("value")
		val := mp.Get(k)
		if fd.MapValue().Message() != nil {
			b.WriteString(" {\n")
			writeFields(b, val.Message(), depth+3)
			indent(b, depth+2)
			b.WriteString("}\n")
		} else {
			b.WriteString(": ")
			writeScalar(b, fd.MapValue(), val)
			b.WriteString("\n")
		}
		indent(b, depth+1)
		b.WriteString("}")
		if j < len(keys)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	indent(b, depth)
	b.WriteString("]\n")
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

func writeScalar(b *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		writeQuoted(b, []byte(v.String()))
	case protoreflect.BytesKind:
		writeQuoted(b, v.Bytes())
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b.WriteString(string(ev.Name()))
		} else {
			b.WriteString(strconv.Itoa(int(v.Enum())))
		}
	case protoreflect.BoolKind:
		b.WriteString(strconv.FormatBool(v.Bool()))
	case protoreflect.FloatKind:
		writeFloat(b, v.Float(), 32)
	case protoreflect.DoubleKind:
		writeFloat(b, v.Float(), 64)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	default:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	}
}

func writeFloat(b *bytes.Buffer, f float64, bits int) {
	switch {
	case math.IsInf(f, 1):
		b.WriteString("inf")
	case math.IsInf(f, -1):
		b.WriteString("-inf")
	case math.IsNaN(f):
		b.WriteString("nan")
	default:
		b.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	}
}

// writeQuoted writes a double-quoted text-format string: printable UTF-8 as
// is, the usual escapes, any other byte as a three-digit octal escape.
func writeQuoted(b *bytes.Buffer, s []byte) {
	b.WriteByte('"')
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == utf8.RuneError && n == 1, r < 0x20, r == 0x7f:
			b.WriteByte('\\')
			b.WriteByte('0' + s[0]>>6)
			b.WriteByte('0' + (s[0]>>3)&7)
			b.WriteByte('0' + s[0]&7)
		default:
			b.Write(s[:n])
		}
		s = s[n:]
	}
	b.WriteByte('"')
}
