package pbtxt

import (
	"strconv"
	"strings"
)

// The position index maps canonical field paths to where they are written.
// A canonical path names every element with its index, messages included:
// "dynamic_batching[0].preferred_batch_size[1]", "input[2].dims[0]". Lookups
// accept the short form ("dynamic_batching.preferred_batch_size") and fill in
// [0] where no index is given.

// canonicalPath adds "[0]" to every segment without an index.
func canonicalPath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, ".")
	for i, s := range segs {
		if !strings.HasSuffix(s, "]") {
			segs[i] = s + "[0]"
		}
	}
	return strings.Join(segs, ".")
}

type token struct {
	text string
	pos  Pos
}

// tokenize splits text-format protobuf into tokens, dropping comments and
// whitespace. It is lenient: it only has to work on text prototext accepted.
func tokenize(data []byte) []token {
	var toks []token
	line, col := 1, 1
	i := 0
	adv := func(n int) {
		for k := 0; k < n && i < len(data); k++ {
			if data[i] == '\n' {
				line++
				col = 1
			} else {
				col++
			}
			i++
		}
	}
	for i < len(data) {
		c := data[i]
		switch {
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				adv(1)
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			adv(1)
		case c == '"' || c == '\'':
			start, p := i, Pos{line, col}
			adv(1)
			for i < len(data) && data[i] != c && data[i] != '\n' {
				if data[i] == '\\' {
					adv(1)
				}
				adv(1)
			}
			adv(1)
			toks = append(toks, token{string(data[start:min(i, len(data))]), p})
		case strings.IndexByte("{}[]<>:,;", c) >= 0:
			toks = append(toks, token{string(c), Pos{line, col}})
			adv(1)
		default:
			start, p := i, Pos{line, col}
			for i < len(data) && strings.IndexByte(" \t\n\r\f\v#\"'{}[]<>:,;", data[i]) < 0 {
				adv(1)
			}
			toks = append(toks, token{string(data[start:i]), p})
		}
	}
	return toks
}

type indexer struct {
	toks  []token
	i     int
	index map[string]Pos
}

func indexPositions(data []byte) map[string]Pos {
	ix := &indexer{toks: tokenize(data), index: map[string]Pos{}}
	ix.fields("", "")
	return ix.index
}

func (ix *indexer) peek() string {
	if ix.i < len(ix.toks) {
		return ix.toks[ix.i].text
	}
	return ""
}

func (ix *indexer) next() token {
	t := token{}
	if ix.i < len(ix.toks) {
		t = ix.toks[ix.i]
		ix.i++
	}
	return t
}

func (ix *indexer) record(path string, p Pos) {
	if _, ok := ix.index[path]; !ok {
		ix.index[path] = p
	}
}

// fields reads field entries until closer ("" = end of input).
func (ix *indexer) fields(prefix, closer string) {
	counts := map[string]int{}
	for ix.i < len(ix.toks) {
		t := ix.peek()
		if t == closer && closer != "" {
			ix.next()
			return
		}
		if t == "," || t == ";" {
			ix.next()
			continue
		}
		name := ix.next()
		if name.text == "[" { // extension or Any type name: [a.b.c]
			var b strings.Builder
			for ix.i < len(ix.toks) && ix.peek() != "]" {
				b.WriteString(ix.next().text)
			}
			ix.next()
			name.text = "[" + b.String() + "]"
		}
		if ix.peek() == ":" {
			ix.next()
		}
		switch ix.peek() {
		case "{", "<":
			ix.message(prefix, name, counts, false)
		case "[":
			ix.next()
			for ix.i < len(ix.toks) && ix.peek() != "]" {
				switch ix.peek() {
				case ",":
					ix.next()
				case "{", "<":
					ix.message(prefix, name, counts, true)
				default:
					ix.scalar(prefix, name, counts, true)
				}
			}
			ix.next()
		default:
			ix.scalar(prefix, name, counts, false)
		}
	}
}

func (ix *indexer) elementPath(prefix, name string, counts map[string]int) string {
	idx := counts[name]
	counts[name] = idx + 1
	return prefix + name + "[" + strconv.Itoa(idx) + "]"
}

// message consumes a message value; in a list the element's own brace is
// recorded, otherwise the field name.
func (ix *indexer) message(prefix string, name token, counts map[string]int, inList bool) {
	path := ix.elementPath(prefix, name.text, counts)
	open := ix.next()
	if inList {
		ix.record(path, open.pos)
	} else {
		ix.record(path, name.pos)
	}
	closer := "}"
	if open.text == "<" {
		closer = ">"
	}
	ix.fields(path+".", closer)
}

// scalar consumes one scalar value: a possibly signed number or identifier, or
// adjacent string literals. In a list the value's own position is recorded,
// otherwise the field name's.
func (ix *indexer) scalar(prefix string, name token, counts map[string]int, inList bool) {
	path := ix.elementPath(prefix, name.text, counts)
	v := ix.next()
	if inList {
		ix.record(path, v.pos)
	} else {
		ix.record(path, name.pos)
	}
	if v.text == "-" {
		ix.next()
	}
	if strings.HasPrefix(v.text, `"`) || strings.HasPrefix(v.text, `'`) {
		for strings.HasPrefix(ix.peek(), `"`) || strings.HasPrefix(ix.peek(), `'`) {
			ix.next()
		}
	}
}

// fieldAt names the field whose value is written at pos, for syntax errors
// that only give a position: the identifier before the ':' (or the list's
// opening bracket) that introduces the value. If pos is a field name itself,
// that name is returned.
func fieldAt(data []byte, pos Pos) string {
	toks := tokenize(data)
	k := -1
	for i, t := range toks {
		if t.pos == pos {
			k = i
			break
		}
	}
	if k < 0 {
		return ""
	}
	if k+1 < len(toks) && strings.Contains(":{<", toks[k+1].text) {
		return toks[k].text
	}
	if k < 1 {
		return ""
	}
	switch toks[k-1].text {
	case ":":
		if k >= 2 {
			return toks[k-2].text
		}
	case "[", ",":
		j := k - 1
		for j >= 0 && toks[j].text != "[" {
			if strings.Contains("{}<>]:", toks[j].text) {
				return ""
			}
			j--
		}
		switch {
		case j >= 2 && toks[j-1].text == ":":
			return toks[j-2].text
		case j >= 1:
			return toks[j-1].text
		}
	}
	return ""
}

// endPos is the position just past the last character.
func endPos(data []byte) Pos {
	line, col := 1, 1
	for _, c := range data {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return Pos{line, col}
}
